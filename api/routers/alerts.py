"""Alerts for sales staff and model owners: list, live stream (SSE), acknowledge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api import alerts_store, profiles
from api.deps import Sales, State
from api.errors import ApiError
from api.responses import ORJSON
from engine import store
from engine.alerts import SEVERITIES, TYPES
from engine.events import to_ts

router = APIRouter(tags=["alerts"])
STATUSES = ("open", "acked")  # an alert is open until POST /v1/alerts/{id}/ack
STATUS_ALIASES = {"acknowledged": "acked", "handled": "acked"}


def _filters(owner: str | None, type: str | None, customer_id: str | None,
             since: str | None, status: str | None, severity: str | None) -> dict[str, Any]:
    if since and len(since) == 10 and since[4:5] == "-":  # a date: from its start, UTC
        since += "T00:00:00+00:00"
    try:
        since_ts = to_ts(float(since) if since and since.replace(".", "").isdigit() else since) \
            if since else None
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"since: {exc}") from None
    status = STATUS_ALIASES.get(status or "", status)
    if status in ("all", "any"):
        status = None
    if status is not None and status not in STATUSES:
        raise ApiError(422, "invalid_request",
                       f"status: {status[:40]!r} is not one of {', '.join(STATUSES)} (or all)")
    if type is not None and type not in TYPES:
        raise ApiError(422, "invalid_request",
                       f"type: {type[:40]!r} is not one of {', '.join(TYPES)}")
    if severity is not None and severity not in SEVERITIES:
        raise ApiError(422, "invalid_request",
                       f"severity: {severity[:40]!r} is not one of {', '.join(SEVERITIES)}")
    return {"owner": owner, "type": type, "customer_id": customer_id, "since": since_ts,
            "status": status, "severity": severity}


@router.get("/v1/alerts", summary="Alerts, newest first")
async def list_alerts(st: State, _: Sales, owner: str | None = None, type: str | None = None,
                      customer_id: str | None = None, since: str | None = None,
                      status: str | None = None, severity: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ORJSON:
    f = _filters(owner, type, customer_id and await profiles.named(st, customer_id), since,
                 status, severity)
    return ORJSON({"alerts": await alerts_store.query(st.redis, limit=limit, **f)})


@router.post("/v1/alerts/{alert_id}/ack", summary="Mark an alert handled")
async def ack(alert_id: str, st: State, key_id: Sales) -> ORJSON:
    if not await alerts_store.exists(st.redis, alert_id):
        raise ApiError(404, "not_found", f"alert {alert_id!r} is unknown")
    await st.redis.hset(store.ALERT_STATUS, alert_id, "acked")
    return ORJSON({"alert_id": alert_id, "status": "acked"})


@router.get("/v1/alerts/stream", summary="Live alerts as server-sent events")
async def stream(request: Request, st: State, _: Sales, owner: str | None = None,
                 type: str | None = None, customer_id: str | None = None,
                 since: str | None = None, status: str | None = None,
                 severity: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Alerts as they are raised. With `since` (and no Last-Event-ID, which resumes after the
    last alert received), first the matching alerts raised since then, oldest first, at most
    `limit` of them (the newest): the same filters as the list, then live."""
    f = _filters(owner, type, customer_id and await profiles.named(st, customer_id), since,
                 status, severity)
    start = last_event_id or "$"
    if start != "$":
        try:
            await st.redis.xrange(store.ALERTS, min=start, count=1)
        except Exception:  # noqa: BLE001 - a malformed Last-Event-ID
            raise ApiError(422, "invalid_request", "Last-Event-ID is not an alert stream id") from None

    async def events() -> AsyncIterator[bytes]:
        from config import connect

        r = connect.async_client(str(st.settings.redis_url))  # a blocking read needs its own link
        last = start
        if last == "$":
            newest = await r.xrevrange(store.ALERTS, count=1)
            last = newest[0][0].decode() if newest else "0-0"
        caught_up = await alerts_store.query(r, limit=limit, **f) \
            if f["since"] is not None and start == "$" else []
        try:
            yield b": connected\n\n"
            for a in reversed(caught_up):  # raised before the stream's start: no stream id
                yield b"event: alert\ndata: " + orjson.dumps(a) + b"\n\n"
            seen = {a["alert_id"] for a in caught_up}
            while not await request.is_disconnected():
                res = await r.xread({store.ALERTS: last}, count=100, block=1000)
                if not res:
                    yield b": keep-alive\n\n"
                    continue
                for a in await alerts_store.with_status(r, res[0][1]):
                    last = a["stream_id"]
                    if alerts_store.matches(a, f) and a["alert_id"] not in seen:
                        yield (f"id: {last}\nevent: alert\ndata: ".encode()
                               + orjson.dumps(a) + b"\n\n")
        except asyncio.CancelledError:
            pass
        finally:
            await r.aclose()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
