"""Partitioned input from Redis Streams, one bytewax partition per stream.

Each partition reads its stream from an offset that lives in bytewax's snapshots (like Kafka
offsets), so a restarted flow with recovery resumes exactly where its state was; without
recovery it re-reads the stream from the start and rebuilds the same state.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from config import connect
from config.wire import SyncWire, usable
from engine import events, store

# partition, the entry's number on its ingested counter, raw event JSON, stream entry id, and
# whether the ingest path validated it with this build's schema (`events.SCHEMA`)
Item = tuple[int, int, bytes, str, bool]
_IDLE = timedelta(milliseconds=20)
# after a batch that emptied the stream, the next read waits this long: entries arriving one by
# one then go through the flow (and its Redis writes) in batches, not each on its own (at 3,000
# records/s the flow spent ~160 us per decision record on per-batch work); a full batch (a
# backlog) is followed at once
_PACE = timedelta(milliseconds=20)


class _StreamPartition(StatefulSourcePartition[Item, tuple[str, int]]):
    def __init__(self, url: str, p: int, batch: int, resume: tuple[str, int] | None) -> None:
        self.client = connect.client(url)
        one = not connect.is_cluster(url)
        if one:  # this client's own table: XREAD replies as sent
            self.client.set_response_callback("XREAD", _as_sent)
        # reads by hiredis on a socket of its own (config/wire.py): ~32 us of CPU per read
        # against ~75 through redis-py, and each partition reads every 20 ms
        self.wire = SyncWire(self.client) if one and usable(self.client) else None
        self.p, self.key, self.batch = p, store.stream(p), batch
        self.last_id, self.seq = resume or ("0-0", 0)
        self._awake: datetime | None = None
        self._beat = 0.0
        self._schema = events.SCHEMA.encode()  # entries marked so were validated on the way in

    def next_batch(self) -> list[Item]:
        now = time.monotonic()
        if now >= self._beat:  # tell the world the flow is alive (idle or not)
            self._beat = now + 1.0
            try:
                self.client.set(store.HEARTBEAT, "1", ex=5)
            except redis.RedisError:
                pass
        try:
            if self.wire is not None:
                res = self.wire.execute([(("XREAD", "COUNT", self.batch, "STREAMS", self.key,
                                           self.last_id), {})])[0]
            else:
                res = self.client.xread({self.key: self.last_id}, count=self.batch)
        except (redis.ConnectionError, redis.TimeoutError):
            self._awake = datetime.now(UTC) + timedelta(seconds=1)
            return []
        if not res:
            self._awake = datetime.now(UTC) + _IDLE
            return []
        entries = next(iter(res.values())) if isinstance(res, dict) else res[0][1]
        self._awake = None if len(entries) >= self.batch else datetime.now(UTC) + _PACE
        out: list[Item] = []
        for entry_id, fields in entries:
            if isinstance(fields, list):  # [field, value, ...] as Redis sent it
                pairs = iter(fields)
                fields = dict(zip(pairs, pairs))
            n = fields.get(b"n")  # the entry's number (store.INGEST_LUA); counted if absent
            self.seq = int(n) if n else self.seq + 1
            self.last_id = entry_id.decode()
            out.append((self.p, self.seq, fields.get(b"e", b""), self.last_id,
                        fields.get(b"v") == self._schema))
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> tuple[str, int]:
        return (self.last_id, self.seq)

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
        self.client.close()


def _as_sent(response: Any, **options: Any) -> Any:
    """XREAD's reply without redis-py's reshaping (three layers of Python per entry, ~3% of the
    flow's CPU): {stream: [[id, [field, value, ...]], ...]} (RESP3; a list of [stream, entries]
    pairs with RESP2), or None."""
    return response


class RedisStreamSource(FixedPartitionedSource[Item, tuple[str, int]]):
    def __init__(self, url: str, partitions: int, batch: int = 500) -> None:
        self.url, self.partitions, self.batch = url, partitions, batch

    def list_parts(self) -> list[str]:
        return [str(p) for p in range(self.partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StreamPartition:
        return _StreamPartition(self.url, int(for_part), self.batch, resume_state)
