"""The hot routes answered before FastAPI's middleware stack, routing and dependency injection.

`POST /v1/decisions` (every page of the website) and `POST /v1/events` went through about a dozen
ASGI layers (FastAPI's and Starlette's exception, telemetry and body-limit layers, ours for timing,
body limit and fallback, the router, `solve_dependencies`), each wrapping `send` as well: in
process (measured once) that cost about as much CPU as the decision itself. `App` (the FastAPI app the factory
builds) answers those two routes with `answer`, which does what the layers did for them at once:
the body limit (413), the role check and rate limit (401/403/429), the route's handler (`serve` in
its router: validation 422, the work), Redis unavailable (503, or for decisions the catalog's
default offers, as api/fallback.py does), an unexpected error (500, logged), all in the API's
error format, and the request's latency in the same metric under the route's name. FastAPI still
declares both routes (OpenAPI, /docs) and serves them when `NEXTBEST_LEAN_ROUTES=false`;
tests/test_lean.py sends the same requests both ways and compares the answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.exceptions
from fastapi import FastAPI

from api import errors, fallback, metrics
from api.errors import ApiError
from engine.store import _default

log = logging.getLogger("nextbest.api")
Handler = Callable[[Any, bytes], Awaitable[tuple[int, Any]]]
_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Route:
    role: str
    handler: Handler  # (app state, raw body) -> (status, content)
    fallback: bool = False  # Redis unavailable: default offers instead of a 503


class App(FastAPI):
    """FastAPI, with `lean` routes (POST path -> Route) answered before its middleware stack."""

    lean: dict[str, Route] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = self.lean.get(scope.get("path", "")) if scope["type"] == "http" else None
        st = getattr(self.state, "nb", None)
        if route is None or st is None or scope["method"] != "POST" or not st.settings.lean_routes:
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        status, payload, headers = await answer(st, route, scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()), *headers]})
        await send({"type": "http.response.body", "body": payload})
        metrics.REQUESTS.labels(scope["path"], str(status)).observe(time.perf_counter() - start)


async def answer(st: Any, route: Route, scope: Any,
                 receive: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, JSON body and extra headers for one request to a lean route."""
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    try:
        body = await read_body(scope, receive, st.settings.max_body_bytes)
        key_id = st.keys.check(_header(scope, b"authorization"), route.role)
        st.limiter.hit(key_id)
        if route.fallback and st.breaker.open:  # a recent failure: answer at once
            if fallback.valid(body):
                return 200, fallback.answer(st, body), headers
        status, content = await route.handler(st, body)
    except ApiError as exc:
        status, content = exc.status, errors.body(exc.code, exc.message, exc.details)
    except redis.exceptions.RedisError as exc:
        if route.fallback:
            st.breaker.trip()
            return 200, fallback.answer(st, body), headers
        status, headers = 503, [(b"retry-after", b"1")]
        content = errors.body("unavailable", "the data store is unavailable; retry shortly",
                              type(exc).__name__)
    except Exception:  # noqa: BLE001 - a bug answers 500 in the error format, and is logged
        log.exception("%s failed", scope["path"])
        status, content = 500, errors.body("internal", "internal error; it has been logged")
    return status, orjson.dumps(content, default=_default, option=_JSON), headers


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def read_body(scope: Any, receive: Any, limit: int) -> bytes:
    """The whole body; 413 past `limit` bytes, declared or as it streams in."""
    declared = _header(scope, b"content-length") or ""
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"request body over {limit} bytes")
    chunks, seen = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise ApiError(413, "too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
