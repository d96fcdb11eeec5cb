"""Erasure: remove every trace of a customer from Redis.

Derived state (profile, counters, consent, identities, decisions) is deleted directly; the raw
events that name the customer are deleted from the partition streams and the dead-letter
stream; alerts about the customer are deleted; then an `erase` record tells the flow to drop its
in-memory state (which it does in order, after anything still in flight for the customer).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from api import alerts_store
from engine import store
from engine.events import routing_key
from engine.exported import as_text

CHUNK = 2000


def _names(payload: dict[str, Any], ids: set[str]) -> bool:
    """Does an entry name one of `ids`? Also as a number (a dead letter keeps what was sent:
    17850.0 names "17850"), and whatever else a dead letter holds there (a list: no one)."""
    return any(isinstance(name := as_text(payload.get(field)), str) and name in ids
               for field in ("customer_id", "anonymous_id"))


async def _purge_stream(r: aioredis.Redis, key: str, ids: set[str], field: bytes) -> tuple[int, list[str]]:
    """Delete the entries of `key` whose payload names one of `ids`; returns count and event ids."""
    removed, event_ids, start = 0, [], "-"
    while True:
        entries = await r.xrange(key, min=start, count=CHUNK)
        if not entries:
            break
        doomed = []
        for entry_id, fields in entries:
            raw = fields.get(field, b"")
            try:
                payload = store.decode(raw)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and _names(payload, ids):
                doomed.append(entry_id)
                if isinstance(payload.get("event_id"), str):
                    event_ids.append(payload["event_id"])
            elif payload is None and any(i.encode() in raw for i in ids):
                doomed.append(entry_id)
        if doomed:
            removed += await r.xdel(key, *doomed)
        if len(entries) < CHUNK:
            break
        start = "(" + entries[-1][0].decode()
    return removed, event_ids


async def erase(st: Any, cid: str, doc: dict[str, Any] | None, now: float) -> dict[str, Any]:
    r, s = st.redis, st.settings
    anon_ids = list((doc or {}).get("ids", []))
    ids = {cid, *anon_ids, *("anon:" + a for a in anon_ids)}
    whose = [cid, *("anon:" + a for a in anon_ids)]  # and what was kept as their visitor before
    pipe = r.pipeline(transaction=False)
    for w in whose:
        pipe.zrange(store.customer_decisions(w), 0, -1)
    decisions = {d.decode() for ids in await pipe.execute() for d in ids}
    pipe = r.pipeline(transaction=False)
    for key in (k for w in whose for k in store.customer_keys(w)):  # one per DEL: clusters
        pipe.delete(key)
    pipe.srem(store.CUSTOMERS, *whose)
    pipe.zrem(store.WATCH, *whose)
    for a in anon_ids:
        pipe.delete(store.anon(a))
    for d in decisions | set((doc or {}).get("d", [])):  # "d": documents written before the index
        pipe.delete(store.decision(d))
    await pipe.execute()
    partitions = {store.partition_of(routing_key(e), s.partitions) for e in
                  [{"type": "x", "customer_id": cid}] + [{"type": "identify", "anonymous_id": a} for a in anon_ids]}
    events = 0
    for p in sorted(partitions):
        n, event_ids = await _purge_stream(r, store.stream(p), ids, b"e")
        events += n
        if event_ids:
            for e in event_ids:  # one key per DEL: clusters
                await r.delete(store.seen(p, e, st.cluster))
    dead, _ = await _purge_stream(r, store.DLQ, ids, b"raw")
    alerts = await alerts_store.erase(r, cid)
    from api import ingest

    await ingest.append(st, [{"type": "erase", "_internal": True, "customer_id": cid,
                              "event_id": f"erase:{cid}:{now}", "ts": now}])
    return {"erased": cid, "found": doc is not None, "events_removed": events,
            "dead_letters_removed": dead, "alerts_removed": alerts}
