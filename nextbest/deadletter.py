"""`nextbest deadletter list|replay`: inspect the dead-letter stream, and replay it after a fix.

Replay re-validates each dead letter against the current contract: those that now pass are
ingested through the same path as live traffic (deduplicated by event id) and removed from the
dead-letter stream; those that still fail stay, with their new reason.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from config import Settings, connect
from engine import store
from engine.events import BadEvent, parse


def entries(client: connect.Sync, limit: int, contains: str | None = None) -> list[dict[str, Any]]:
    out = []
    for entry_id, f in client.xrevrange(store.DLQ, count=limit if not contains else None):
        row = {"id": entry_id.decode(), **{k.decode(): v.decode("utf-8", "replace") for k, v in f.items()}}
        if contains and contains not in row.get("reason", "") + row.get("raw", ""):
            continue
        out.append(row)
        if len(out) >= limit:
            break
    return out


def show(settings: Settings, limit: int, contains: str | None, console: Console) -> int:
    client = connect.client(str(settings.redis_url))
    total = client.xlen(store.DLQ)
    t = Table(title=f"dead letters: {total} held (at most {settings.deadletter_maxlen})")
    for col in ("id", "source", "reason", "raw"):
        t.add_column(col, overflow="fold")
    for row in entries(client, limit, contains):
        t.add_row(row["id"], row.get("source", ""), row.get("reason", ""), row.get("raw", "")[:200])
    console.print(t)
    return 0


def replay(settings: Settings, contains: str | None, console: Console) -> tuple[int, int]:
    """Re-validate and ingest what now passes; returns (replayed, still bad)."""
    client = connect.client(str(settings.redis_url))
    script = client.register_script(store.INGEST_LUA)
    replayed = still_bad = 0
    for entry_id, f in client.xrange(store.DLQ):
        raw = f.get(b"raw", b"")
        if contains and contains.encode() not in raw + f.get(b"reason", b""):
            continue
        try:
            event = parse(raw, settings.latest_ts())
        except BadEvent as exc:
            still_bad += 1
            client.xadd(store.DLQ, {**f, b"reason": str(exc).encode(), b"ts": str(time.time()).encode(),
                                    b"source": b"deadletter-replay"},
                        maxlen=settings.deadletter_maxlen, approximate=True)
            client.xdel(store.DLQ, entry_id)
            continue
        keys, args = store.ingest_args(event, settings.partitions, settings.dedup_ttl_s,
                                       settings.stream_maxlen, connect.is_cluster(settings.redis_url))
        script(keys=keys, args=args)
        client.xdel(store.DLQ, entry_id)
        replayed += 1
    console.print(f"replayed {replayed}, still failing {still_bad}")
    return replayed, still_bad
