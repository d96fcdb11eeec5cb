"""The hot routes served as plain ASGI, past FastAPI's routing and dependency injection.

`POST /v1/decisions` (every page of the website) and `POST /v1/events` go through FastAPI's
router, its exception and body-limit layers and `solve_dependencies` for the same work each
time: in process that cost about as much CPU as the decision itself (~250 us of ~600 us at 16
concurrent decisions). This middleware answers those two routes directly, with the same handlers
(`serve` in each router), the same role checks and rate limits, the same error format, and
metrics. FastAPI still declares both routes (OpenAPI, /docs) and serves them when
`NEXTBEST_LEAN_ROUTES=false`; the tests run both ways and compare.

It sits inside the body limit, the decision fallback and the timing middleware, so those apply
to it unchanged: a 503 from here (Redis unavailable) is what the fallback turns into default
offers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import orjson
import redis.exceptions

from api import errors
from api.errors import ApiError
from engine.store import _default

log = logging.getLogger("nextbest.api")
Handler = Callable[[Any, bytes], Awaitable[tuple[int, Any]]]
_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class Lean:
    """ASGI middleware; `routes` maps a POST path to (role, handler(state, body))."""

    def __init__(self, app: Any, owner: Any, routes: dict[str, tuple[str, Handler]]) -> None:
        self.app, self.owner, self.routes = app, owner, routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        st = self.owner.state.nb if route else None
        if route is None or scope["method"] != "POST" or not st.settings.lean_routes:
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = []
        role, handler = route
        scope["route"] = SimpleNamespace(path=scope["path"])  # metrics name it as FastAPI's
        body = await _body(receive)  # a body over the limit raises to the body-limit middleware
        try:
            key_id = st.keys.check(_header(scope, b"authorization"), role)
            st.limiter.hit(key_id)
            status, content = await handler(st, body)
        except ApiError as exc:
            status, content = exc.status, errors.body(exc.code, exc.message, exc.details)
        except redis.exceptions.RedisError as exc:
            status, headers = 503, [(b"retry-after", b"1")]
            content = errors.body("unavailable", "the data store is unavailable; retry shortly",
                                  type(exc).__name__)
        except Exception:  # noqa: BLE001 - a bug answers 500 in the error format, and is logged
            log.exception("%s failed", scope["path"])
            status, content = 500, errors.body("internal", "internal error; it has been logged")
        payload = orjson.dumps(content, default=_default, option=_JSON)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()), *headers]})
        await send({"type": "http.response.body", "body": payload})


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _body(receive: Any) -> bytes:
    """The whole body (the body-limit middleware outside bounds it)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
