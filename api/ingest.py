"""Appending raw inputs (events, decision records) to the partition streams, once per id."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from config import connect
from engine import sourcedrift, store
from engine.consent import key as consent_key
from engine.policy import response_field


async def append(st: Any, events: list[dict[str, Any]], pipe: Any = None,
                 consent: bool = False) -> list[int]:
    """Append validated events; returns 1 for each appended, 0 for each duplicate.

    With `consent`, consent and feedback events are also recorded where decisions read them at
    once (consent gate, contact policy).
    """
    s = st.settings
    own = pipe is None
    pipe = pipe or st.redis.pipeline(transaction=False)
    for ev in events:
        keys, args = store.ingest_args(ev, s.partitions, s.dedup_ttl_s, s.stream_maxlen,
                                       st.cluster)
        connect.evalsha(pipe, store.INGEST_SHA, keys, args)
    extra = 0
    for ev in events if consent else ():
        if ev["type"] == "consent":
            name = consent_key(ev["purpose"], ev.get("channel"))
            pipe.eval(CONSENT_LUA, 1, store.consent(ev["customer_id"]), name,
                      "1" if ev["granted"] else "0", ev["ts"])
            extra += 1
        elif ev["type"] == "feedback" and (field := response_field(ev["offer_id"], ev["outcome"])):
            pipe.hset(store.contact(ev["customer_id"]), field, ev["ts"])  # contact policy
            extra += 1
    if not own:
        return []
    res = await execute(st, pipe)
    return [int(x) for x in res[: len(res) - extra]]


# KEYS: consent hash. ARGV: record (`engine.consent.key`), "1"/"0", ts. The latest consent by event time wins.
CONSENT_LUA = """
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':ts') or '-1')
if tonumber(ARGV[3]) >= cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[1] .. ':ts', ARGV[3])
end
return 1
"""


async def execute(st: Any, pipe: Any) -> list[Any]:
    """Run a pipeline holding script calls (`store.SCRIPTS`); when Redis lost them (a restart,
    SCRIPT FLUSH), load them and run it again (its other commands are idempotent writes)."""
    commands = connect.queued(pipe)
    try:
        return await st.send(pipe)
    except NoScriptError:
        await load_scripts(st.redis)
        retry = st.redis.pipeline(transaction=False)
        for args, options in commands:
            retry.execute_command(*args, **options)
        return await st.send(retry)


async def load_scripts(r: Any) -> None:
    for script in store.SCRIPTS:
        await r.script_load(script)  # the same SHA-1 every time: callers keep theirs


async def dead_letter(r: aioredis.Redis, maxlen: int, items: list[tuple[bytes, str]],
                      source: str) -> None:
    """Dead-letter bad events, and tell the flow how many each source sent (one internal record
    on partition 0 per call, in the same pipeline: engine/sourcedrift.py says why)."""
    if not items:
        return
    pipe = r.pipeline(transaction=False)
    for raw, reason in items:
        pipe.xadd(store.DLQ, {"raw": raw[:65536], "reason": reason, "source": source,
                              "ts": str(time.time())}, maxlen=maxlen, approximate=True)
    pipe.hincrby(store.STATS, "deadlettered", len(items))
    record = sourcedrift.dead_letter_record([sourcedrift.channel_of_raw(raw) for raw, _ in items])
    store.append_record(pipe, record)
    await pipe.execute()
