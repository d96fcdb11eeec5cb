"""The Redis key layout and codecs: the one place in `engine` that knows about Redis.

Every key of one customer carries the customer id as a hash tag (`{c1}`) so Redis Cluster keeps
them in one slot; partition streams carry their partition as the tag, together with the dedup
keys and counters that the ingest script touches atomically.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import orjson

# zstandard is imported here, not lazily: first imported inside bytewax's worker threads, it
# crashed ~1 start in 4 of a 2 processes x 2 workers flow ("Send thread panic")
import zstandard

PREFIX = "nb"
DLQ = f"{PREFIX}:dlq"
ALERTS = f"{PREFIX}:alerts"
ALERT_STATUS = f"{PREFIX}:alerts:status"
ALERT_INDEX = f"{PREFIX}:alerts:ts"  # zset: alert id -> event time (newest-first listing)
ALERT_DOCS = f"{PREFIX}:alerts:doc"  # hash: alert id -> the alert as raised
MODELS = f"{PREFIX}:models"
MODELS_META = f"{PREFIX}:models:meta"
MODELS_CHANNEL = f"{PREFIX}:models:changed"
CLOCK = f"{PREFIX}:clock"
VALUE_PARAMS = f"{PREFIX}:value:params"
WATCH = f"{PREFIX}:watch"  # zset: customer -> event time when their silence becomes abnormal
CUSTOMERS = f"{PREFIX}:customers"
STATS = f"{PREFIX}:stats"  # counters: deadlettered, unconverted:<currency> (engine/money.py)
HEARTBEAT = f"{PREFIX}:flow:heartbeat"
SOURCES = f"{PREFIX}:sources"  # the flow's per-source spike monitor state (engine/sourcedrift.py)
# webhook delivery (nextbest/webhooks.py): one hash tag, so a Redis Cluster keeps them together
WEBHOOK_GROUP = "webhooks"  # consumer group on ALERTS
WEBHOOK_JOBS = f"{PREFIX}:{{wh}}:jobs"  # hash: delivery id -> pending delivery (no alert body)
WEBHOOK_FAILED = f"{PREFIX}:{{wh}}:failed"  # list, newest first, bounded: deliveries given up
WEBHOOK_STATS = f"{PREFIX}:{{wh}}:stats"  # hash: delivered, retried, failed


def webhook_due(subscription_id: str) -> str:
    """Zset of one subscription's pending deliveries, scored by when they are due (Unix s)."""
    return f"{PREFIX}:{{wh}}:due:{subscription_id}"


def webhook_done(delivery_id: str) -> str:
    """Set with a TTL once a delivery was acknowledged, so a re-read alert is not posted again."""
    return f"{PREFIX}:{{wh}}:done:{delivery_id}"


def partition_of(key: str, partitions: int) -> int:
    """Stable partition of a routing key (customer or anonymous id).

    >>> partition_of("c1", 4) == partition_of("c1", 4)
    True
    """
    return zlib.crc32(key.encode()) % partitions


def unconverted(stats: dict[bytes, bytes]) -> dict[str, int]:
    """Transactions taken per currency that had no exchange rate, from the STATS hash."""
    return {k[12:].decode(): int(v) for k, v in stats.items() if k.startswith(b"unconverted:")}


def stream(p: int) -> str:
    return f"{PREFIX}:ev:{{p{p}}}"


def seen(p: int, event_id: str, cluster: bool = False) -> str:
    """An event id's dedup key: one for the whole engine, so an id is taken once whatever
    customer it names; on a cluster, one per partition (the ingest script's keys share a slot:
    there, an id sent for two customers of two partitions is taken for each)."""
    return f"{PREFIX}:seen:{{p{p}}}:{event_id}" if cluster else f"{PREFIX}:seen:{event_id}"


def ingested(p: int) -> str:
    return f"{PREFIX}:in:{{p{p}}}"


def processed(p: int) -> str:
    return f"{PREFIX}:done:{{p{p}}}"


def customer(cid: str) -> str:
    return f"{PREFIX}:c:{{{cid}}}"


def contact(cid: str) -> str:
    return f"{PREFIX}:contact:{{{cid}}}"


def consent(cid: str) -> str:
    """Consent as ingested (purpose -> "1"/"0" and ts): read by decisions before the flow
    has processed it, so a withdrawal takes effect on the very next decision."""
    return f"{PREFIX}:consent:{{{cid}}}"


def anon(anonymous_id: str) -> str:
    return f"{PREFIX}:anon:{{{anonymous_id}}}"


def decision(decision_id: str) -> str:
    return f"{PREFIX}:dec:{decision_id}"


def customer_decisions(cid: str) -> str:
    """Zset of the customer's decision ids by wall time made, for as long as their `decision`
    keys live: erasure deletes every one of them, not only the latest the flow remembers."""
    return f"{PREFIX}:cdec:{{{cid}}}"


def customer_alerts(cid: str) -> str:
    """Zset of the customer's alert ids by event time (the profile's open alerts)."""
    return f"{PREFIX}:calerts:{{{cid}}}"


def customer_keys(cid: str) -> list[str]:
    """Every per-customer key (erasure deletes these, plus anonymous links and decisions)."""
    return [customer(cid), contact(cid), consent(cid), customer_alerts(cid), customer_decisions(cid)]


# KEYS: stream, seen-key, ingested-counter. ARGV: payload, dedup ttl, maxlen, schema.
# Adds the event once per event id; returns 1 when added, 0 for a duplicate. Each entry carries
# its number `n` on the partition's ingested counter: the flow's processed counter is the `n`
# of the last entry it processed, so `ingested - processed` stays exact when entries are
# deleted before the flow reads them (erasure) or a restarted flow re-reads fewer of them. `v`
# says which validation the payload passed (`events.SCHEMA`): the flow does not repeat it.
INGEST_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  local n = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1], 'n', n, 'v', ARGV[4])
  return 1
end
return 0
"""

# KEYS: a counter. ARGV: a value. The counter becomes the value if that is higher (progress, clock).
SETMAX_LUA = "local c = tonumber(redis.call('GET', KEYS[1]) or '0') " \
             "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1"

# KEYS: watch zset. ARGV: customer, deadline. Removes the watch only if it was not moved since.
UNWATCH_LUA = "if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then " \
              "redis.call('ZREM', KEYS[1], ARGV[1]) return 1 end return 0"

# KEYS: stream, ingested-counter. ARGV: payload, and optionally the stream's length to trim to
# (else the next event's append trims). An internal record, numbered as INGEST_LUA does, without
# a dedup key: its id is made where it is appended, once.
RECORD_LUA = """
local n = redis.call('INCR', KEYS[2])
if ARGV[2] then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1], 'n', n)
else
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[1], 'n', n)
end
return n
"""


# KEYS: the customer's decision index, their contact hash. ARGV: decision id, when it was made
# (Unix s), how long decisions live (s); when offers were served, also the impressions and the
# lead (JSON) and how long contact history lives (s). What a decision writes under the customer's
# hash tag, as one call (five commands cost the API a fifth of its Redis work per decision).
DECIDED_LUA = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[4] then
  redis.call('HSET', KEYS[2], 'imp', ARGV[4], 'lead', ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return 1
"""


def sha(script: str) -> str:
    """The id Redis knows a script by (EVALSHA): the SHA-1 of its text."""
    return hashlib.sha1(script.encode()).hexdigest()


SCRIPTS = (INGEST_LUA, RECORD_LUA, DECIDED_LUA)
INGEST_SHA, RECORD_SHA, DECIDED_SHA = sha(INGEST_LUA), sha(RECORD_LUA), sha(DECIDED_LUA)


def append_record(pipe: Any, record: dict[str, Any], p: int = 0) -> None:
    """Queue an internal record on partition `p`'s stream, numbered (RECORD_LUA)."""
    pipe.eval(RECORD_LUA, 2, stream(p), ingested(p), encode(record))

# KEYS: clock. ARGV: ts. Moves the clock forward only.
CLOCK_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1] end
return tostring(cur)
"""


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode(obj: Any) -> bytes:
    """JSON; keys that are not strings (rare) are written as strings. orjson's option for them
    made every call ~40% slower (~2.7 against ~1.7 us for a profile document), so it is only
    used when a plain call refuses such a key."""
    try:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return orjson.dumps(obj, default=_default,
                            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def decode(raw: bytes | str | None) -> Any:
    """JSON, or a compressed document (`compress`): a zstd frame starts with 0x28 ("("), a zlib
    stream (documents written before zstd) with "x"; JSON starts with neither."""
    if raw is None:
        return None
    if raw[:1] == b"(":
        raw = _unzstd(raw)
    elif raw[:1] == b"x":
        raw = zlib.decompress(raw)
    return orjson.loads(raw)


def compress(raw: bytes, kind: str = "profile") -> bytes:
    """JSON as stored compressed: zstd level 1 with a dictionary trained on what `kind` names
    (`DICTIONARIES`). A customer's profile document: ~1.8 KB of JSON -> ~270 B for ~4.4 us of
    the flow's CPU and ~2 us to read, where zlib level 1 gave ~570 B for ~19 us (Redis memory per
    customer is dominated by this key). A decision record: ~2.4 KB -> ~0.26 KB, against ~0.9 KB
    with the profile documents' dictionary. An event: ~180 B -> ~45 B."""
    return _zstd().compressors[kind].compress(raw)


# kind -> the file of its dictionary (`python -m bench.zdict`); a frame names the dictionary it
# was compressed with, so `decode` reads any of them: keep a replaced one under a new name here
DICTIONARIES = {"profile": "profile.zdict", "decision": "decision.zdict", "event": "event.zdict"}
_local = threading.local()


class _Codecs(NamedTuple):
    compressors: dict[str, Any]  # kind -> compressor
    decompressors: dict[int, Any]  # dictionary id (0: none) -> decompressor


def _zstd() -> _Codecs:
    """A compressor per kind, and a decompressor per dictionary id, per thread: zstandard's
    objects must not be shared between threads, and bytewax runs a process's workers as threads."""
    codec = getattr(_local, "zstd", None)
    if codec is None:
        codec = _local.zstd = _Codecs({}, {0: zstandard.ZstdDecompressor()})
        for kind, name in DICTIONARIES.items():
            trained = zstandard.ZstdCompressionDict(_dictionary(name))
            codec.compressors[kind] = zstandard.ZstdCompressor(level=1, dict_data=trained)
            codec.decompressors[trained.dict_id()] = zstandard.ZstdDecompressor(dict_data=trained)
    return codec


@functools.cache
def _dictionary(name: str) -> bytes:
    return (Path(__file__).parent / name).read_bytes()


MAX_INFLATED = 4 << 20  # a compressed payload may not say it holds more (a decompression bomb)


def _unzstd(raw: bytes) -> bytes:
    frame = zstandard.get_frame_parameters(raw)
    size, used = frame.content_size, frame.dict_id
    if size == zstandard.CONTENTSIZE_UNKNOWN or size > MAX_INFLATED:
        raise ValueError(f"compressed payload of unknown or too large size ({size} bytes)")
    decompressors = _zstd().decompressors
    if used not in decompressors:  # a frame carries its dictionary's id: keep old ones to read
        known = sorted(k for k in decompressors if k)
        raise ValueError(f"document compressed with dictionary {used}; this build has {known}")
    return decompressors[used].decompress(raw)


def ingest_args(event: dict[str, Any], partitions: int, dedup_ttl: int, maxlen: int,
                cluster: bool = False) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of `INGEST_LUA` for one event that passed `events.validate` (or an
    internal record)."""
    from engine.events import SCHEMA

    p = _partition(event, partitions)
    keys = [stream(p), seen(p, event["event_id"], cluster), ingested(p)]
    return keys, [_payload(event), dedup_ttl, maxlen, SCHEMA]


def record_args(record: dict[str, Any], partitions: int, maxlen: int,
                ) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of `RECORD_LUA` for an internal record appended once by whoever made its
    id, such as the API's decision records: a dedup key each (~115 B of Redis memory for
    `dedup_ttl_s`, 30 days by default) would hold ~2.6 billion of them at 1,000 decisions/s."""
    p = _partition(record, partitions)
    return [stream(p), ingested(p)], [_payload(record), maxlen]


def _partition(event: dict[str, Any], partitions: int) -> int:
    from engine.events import routing_key

    return partition_of(routing_key(event), partitions)


def _payload(event: dict[str, Any]) -> bytes:
    """A stream entry's payload, compressed: the streams are most of Redis's memory (they keep
    up to `stream_maxlen` entries per partition) and their appends most of the append-only
    file's growth, which sets how often Redis forks to rewrite it. A decision record (~2.4 KB of
    JSON, mostly the model inputs) -> ~0.26 KB; an event (~180 B) -> ~45 B for ~2 us. Readers
    go through `decode`."""
    decision = event.get("_internal") and event.get("type") == "decision"
    return compress(encode(event), "decision" if decision else "event")
