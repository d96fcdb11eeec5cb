"""Decisions keep answering when Redis does not: default offers from the catalog, marked as such.

An ASGI middleware around `POST /v1/decisions`: when the decision fails because the data store
is unavailable (the app answers 503), or while a recent failure keeps the breaker open, it answers
200 with the catalog's default offers (`fallback: true` in offers.yaml, else non-marketing actions),
`"fallback": true` and a reason. Writes elsewhere keep failing with a clear 503. The breaker closes
after `cooldown_s`, so the engine recovers by itself when Redis returns.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from api import metrics

PATH = "/v1/decisions"


class Breaker:
    def __init__(self, cooldown_s: float = 1.0) -> None:
        self.cooldown_s = cooldown_s
        self.open_until = 0.0

    def trip(self) -> None:
        self.open_until = time.monotonic() + self.cooldown_s

    @property
    def open(self) -> bool:
        return time.monotonic() < self.open_until


def default_offers(catalog: Any, channel: str | None, limit: int) -> list[dict[str, Any]]:
    """What to show when nothing is known: flagged defaults, else non-marketing actions."""
    usable = [o for o in catalog.offers if not channel or not o.channels or channel in o.channels]
    chosen = [o for o in usable if getattr(o, "fallback", False)] or [o for o in usable if not o.marketing]
    chosen.sort(key=lambda o: -o.value * o.lever)
    return [{"offer_id": o.id, "kind": o.kind, "title": o.title, "rank": i + 1, "score": None,
             "propensity": None, "value": o.value, "reasons": ["default offer: data store unavailable"]}
            for i, o in enumerate(chosen[: max(1, limit)])]


def answer(state: Any, body: bytes) -> bytes:
    try:
        req = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        req = {}
    req = req if isinstance(req, dict) else {}
    limit = req.get("limit") if isinstance(req.get("limit"), int) else 1
    channel = req.get("channel") if isinstance(req.get("channel"), str) else None
    metrics.FALLBACKS.inc()
    return orjson.dumps({
        "decision_id": "fallback-" + secrets.token_urlsafe(9),
        "customer_id": req.get("customer_id") or req.get("anonymous_id"),
        "offers": default_offers(state.catalog.catalog, channel, min(max(limit, 1), 50)),
        "explored": False, "fallback": True, "personalized": False,
        "reason": "the data store is unavailable: default offers from the catalog, not personalised",
    })


class Fallback:
    """ASGI middleware; `app.state.nb` must hold `breaker`, `catalog` and `keys`."""

    def __init__(self, app: Any, owner: Any) -> None:
        self.app, self.owner = app, owner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        state = self.owner.state.nb
        body = await _read(receive)
        if state.breaker.open and _authorised(state, scope) and valid(body):
            await _send(send, 200, answer(state, body))
            return
        held: list[Any] = []
        failed = [False]

        async def hold(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                failed[0] = True
            if failed[0]:
                held.append(message)
            else:
                await send(message)

        await self.app(scope, _replay(body), hold)
        if failed[0]:
            state.breaker.trip()
            await _send(send, 200, answer(state, body))


def valid(body: bytes) -> bool:
    """A request the app would refuse (422) is refused while the breaker is open too."""
    from pydantic import ValidationError

    from api.routers.decisions import DecisionIn

    try:
        DecisionIn.model_validate_json(body or b"{}")
        return True
    except (ValidationError, ValueError):
        return False


def _authorised(state: Any, scope: Any) -> bool:
    headers = dict(scope.get("headers") or [])
    try:
        state.keys.check(headers.get(b"authorization", b"").decode("latin-1"), "decide")
        return True
    except Exception:  # noqa: BLE001 - not authorised: let the app answer 401/403 as usual
        return False


async def _read(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def _replay(body: bytes) -> Any:
    sent = [False]

    async def receive() -> dict[str, Any]:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
