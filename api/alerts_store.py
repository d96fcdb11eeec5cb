"""Alerts as the flow wrote them, with their status kept beside.

The flow writes each alert to a stream (live readers: SSE, webhooks), to a hash of documents by
id, and to indexes by event time (all alerts, and each customer's own), so listings are newest
first in event time (a replayed year lists its last alerts first), lookups by id are one read,
and a profile's open alerts do not scan everyone else's."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from engine import store

SCAN_LIMIT = 20_000
PAGE = 500


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
    """Newest first by event time (`ts`, ties by id); reads back at most SCAN_LIMIT alerts.

    A customer's alerts come from their own index; `since` bounds the index range, so neither
    scans alerts about others or older ones."""
    if filters.get("alert_id"):
        return [a for a in await _docs(r, [filters["alert_id"]]) if matches(a, filters)][:limit]
    cid = filters.get("customer_id")
    index = store.customer_alerts(cid) if cid else store.ALERT_INDEX
    low = filters["since"] if filters.get("since") is not None else "-inf"
    out: list[dict[str, Any]] = []
    offset = 0
    while len(out) < limit and offset < SCAN_LIMIT:
        ids = await r.zrevrangebyscore(index, "+inf", low, start=offset, num=PAGE)
        if not ids:
            break
        offset += len(ids)
        out += [a for a in await _docs(r, ids) if matches(a, filters)]
    return out[:limit]


async def _docs(r: aioredis.Redis, ids: list[Any]) -> list[dict[str, Any]]:
    """The alerts with these ids (those still held), each with its current status."""
    pipe = r.pipeline(transaction=False)
    pipe.hmget(store.ALERT_DOCS, ids)
    pipe.hmget(store.ALERT_STATUS, ids)
    docs, statuses = await pipe.execute()
    out = []
    for doc, status in zip(docs, statuses):
        if doc is not None:
            a = store.decode(doc)
            if status is not None:
                a["status"] = status.decode()
            out.append(a)
    return out


async def exists(r: aioredis.Redis, alert_id: str) -> bool:
    return bool(await r.hexists(store.ALERT_DOCS, alert_id))


async def erase(r: aioredis.Redis, customer_id: str) -> int:
    ids, alert_ids, end = [], [], "+"
    while True:
        entries = await r.xrevrange(store.ALERTS, max=end, count=1000)
        if not entries:
            break
        for entry_id, fields in entries:
            alert = store.decode(fields[b"a"])
            if alert.get("customer_id") == customer_id:
                ids.append(entry_id)
                alert_ids.append(alert.get("alert_id", ""))
        end = "(" + entries[-1][0].decode()
    if ids:
        await r.xdel(store.ALERTS, *ids)
    doomed = set(alert_ids) | set(await r.zrange(store.customer_alerts(customer_id), 0, -1))
    if doomed:
        await r.zrem(store.ALERT_INDEX, *doomed)
        await r.hdel(store.ALERT_DOCS, *doomed)
        await r.hdel(store.ALERT_STATUS, *doomed)
    await r.delete(store.customer_alerts(customer_id))
    return len(ids)
