"""POST /v1/events: validate, append good events durably, dead-letter bad ones."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from api import ingest, metrics
from api.deps import Ingest, State
from api.errors import ApiError
from api.lean import read_body
from api.responses import ORJSON
from engine.events import BadEvent, validate

router = APIRouter(tags=["events"])


def _raw(obj: Any, body: bytes) -> bytes:
    """The rejected event as JSON for the dead-letter stream; the whole body as sent when the
    event nests too deeply for orjson to write it again."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return body


class _Unreadable:
    """A line of a JSON Lines body that is not JSON: rejected with its index like a bad event."""

    def __init__(self, line: bytes, error: str) -> None:
        self.line, self.error = line, error


def _json_lines(raw: bytes) -> list[Any] | None:
    """A body in JSON Lines (a file's lines, as `curl --data-binary @events.jsonl` sends
    them), one item per non-blank line; None unless at least one line is JSON."""
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    out: list[Any] = []
    for line in lines:
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            out.append(_Unreadable(line, f"not JSON: {exc}"))
    return out if any(not isinstance(o, _Unreadable) for o in out) else None


@router.post("/v1/events", status_code=202,
             summary="Ingest one event, a list of events, or JSON Lines (one event per line)")
async def post_events(request: Request, st: State, _: Ingest) -> ORJSON:
    status, content = await serve(st, await read_body(request.scope, request.receive,
                                                      st.settings.max_body_bytes))
    return ORJSON(content, status_code=status)


async def serve(st: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Accept the good events of a body and dead-letter the bad ones (also the lean path's
    handler, api/lean.py)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        body = _json_lines(raw)
        if body is None:  # nothing to accept, but kept like any bad event
            await ingest.dead_letter(st.redis, st.settings.deadletter_maxlen,
                                     [(raw, f"not JSON: {exc}")], "api")
            metrics.EVENTS.labels("rejected").inc()
            raise ApiError(400, "bad_json", f"body is not valid JSON: {exc} (kept in the "
                                            "dead-letter stream)") from None
    items = body if isinstance(body, list) else [body]
    if len(items) > st.settings.max_batch:
        raise ApiError(413, "batch_too_large",
                       f"{len(items)} events in one call; at most {st.settings.max_batch}")
    good, rejected, dead = [], [], []
    latest = st.settings.latest_ts()
    for i, obj in enumerate(items):
        if isinstance(obj, _Unreadable):
            rejected.append({"index": i, "error": obj.error})
            dead.append((obj.line, obj.error))
            continue
        try:
            good.append(validate(obj, latest))
        except BadEvent as exc:
            rejected.append({"index": i, "error": str(exc)})
            dead.append((_raw(obj, raw), str(exc)))
    added = await ingest.append(st, good, consent=True) if good else []
    await ingest.dead_letter(st.redis, st.settings.deadletter_maxlen, dead, "api")
    metrics.EVENTS.labels("accepted").inc(len(good))
    metrics.EVENTS.labels("rejected").inc(len(rejected))
    metrics.EVENTS.labels("duplicate").inc(added.count(0))
    return 202, {"accepted": len(good), "rejected": rejected, "duplicates": added.count(0)}
