"""Alerts as the flow wrote them (a Redis Stream), with their status kept beside."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from engine import store

SCAN_LIMIT = 20_000


def matches(alert: dict[str, Any], f: dict[str, Any]) -> bool:
    for field in ("owner", "type", "customer_id", "status", "severity", "alert_id"):
        if f.get(field) is not None and alert.get(field) != f[field]:
            return False
    return f.get("since") is None or alert.get("ts", 0) >= f["since"]


async def with_status(r: aioredis.Redis, entries: list[Any]) -> list[dict[str, Any]]:
    alerts = []
    for entry_id, fields in entries:
        a = store.decode(fields[b"a"])
        a["stream_id"] = entry_id.decode()
        alerts.append(a)
    if alerts:
        statuses = await r.hmget(store.ALERT_STATUS, [a["alert_id"] for a in alerts])
        for a, s in zip(alerts, statuses):
            if s is not None:
                a["status"] = s.decode()
    return alerts


async def query(r: aioredis.Redis, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
    """Newest first; scans back at most SCAN_LIMIT alerts."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    end, scanned = "+", 0
    while len(out) < limit and scanned < SCAN_LIMIT:
        entries = await r.xrevrange(store.ALERTS, max=end, count=500)
        if not entries:
            break
        scanned += len(entries)
        for a in await with_status(r, entries):
            if a["alert_id"] not in seen and matches(a, filters):
                seen.add(a["alert_id"])
                out.append(a)
        end = "(" + entries[-1][0].decode()
    return out[:limit]


async def erase(r: aioredis.Redis, customer_id: str) -> int:
    ids, end = [], "+"
    while True:
        entries = await r.xrevrange(store.ALERTS, max=end, count=1000)
        if not entries:
            break
        for entry_id, fields in entries:
            if store.decode(fields[b"a"]).get("customer_id") == customer_id:
                ids.append(entry_id)
        end = "(" + entries[-1][0].decode()
    if ids:
        await r.xdel(store.ALERTS, *ids)
    return len(ids)
