"""Every write the flow makes, batched into one Redis pipeline per batch.

Writes are absolute values (documents, model state, offsets), so writing a batch twice after a
crash is harmless; alerts carry deterministic ids for the same reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from config import connect
from config.wire import SyncWire, usable
from engine import store
from flows import follow

SWEEP_EVERY_S = 3600.0  # event time between silence sweeps
SWEEP_BATCH = 2000  # watched customers ticked per round of a sweep
# wall time between sweeps by the first worker's timer: the event-time clock can stand still
# with customers overdue (a file replayed customer by customer reaches its last day with the
# first customer; every later customer's silence was then never ticked)
SWEEP_WALL_S = 2.0
LOG = logging.getLogger("nextbest.flow")
TRIM_EVERY = 1000  # alerts written between trims of the alert index
PER_CUSTOMER_ALERTS = 100  # newest alert ids kept in a customer's own index


class _Writer(StatelessSinkPartition[tuple[Any, ...]]):
    def __init__(self, url: str, dlq_maxlen: int, alerts_maxlen: int,
                 ingest: tuple[int, int, int], timer: bool = False) -> None:
        self.client = connect.client(url)
        self.cluster = connect.is_cluster(url)
        # a batch's pipeline is built by redis-py and sent by hiredis (config/wire.py): a
        # pipeline of 10 commands cost ~40 us of CPU that way against ~150 us through redis-py
        self.wire = None if self.cluster or not usable(self.client) else SyncWire(self.client)
        self.dlq_maxlen, self.alerts_maxlen = dlq_maxlen, alerts_maxlen
        self.setmax = self.client.register_script(store.SETMAX_LUA)
        self.unwatch = self.client.register_script(store.UNWATCH_LUA)
        self.ingest = self.client.register_script(store.INGEST_LUA)
        self.record = self.client.register_script(store.RECORD_LUA)
        self.loaded = False  # loaded on the first write: Redis may be away at start
        self.partitions, self.dedup_ttl, self.maxlen = ingest
        self.next_sweep = 0.0
        self.alerts_since_trim = TRIM_EVERY  # trim once at start
        self.stopping = threading.Event()
        if timer:
            threading.Thread(target=self._sweeping, name="silence-sweep", daemon=True).start()

    def write_batch(self, items: list[tuple[Any, ...]]) -> None:
        while True:
            try:
                self._write(items)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.5)  # Redis is away: wait and retry; nothing is dropped
            except redis.exceptions.NoScriptError:
                self._load_scripts()  # Redis restarted empty: load them, write the batch again

    def _load_scripts(self) -> None:
        for script in (self.setmax, self.unwatch, self.ingest, self.record):
            script.sha = self.client.script_load(script.script)  # on every primary
        self.loaded = True

    def _call(self, script: Any, keys: list[Any], args: list[Any], pipe: Any) -> None:
        # EVALSHA of a script loaded once: a pipeline holding `Script` objects asks Redis
        # whether they exist (SCRIPT EXISTS, a round trip) before every batch
        connect.evalsha(pipe, script.sha, keys, args)

    def _write(self, items: list[tuple[Any, ...]]) -> None:
        if not self.loaded:
            self._load_scripts()
        pipe = self.client.pipeline(transaction=False)
        progress: dict[int, int] = {}
        profiles: dict[str, bytes] = {}  # customer -> document, written together (`_profiles`)
        clock = 0.0
        models_changed = False
        alerts = 0
        handovers: list[tuple[str, str, str]] = []
        signed_in: list[tuple[str, str]] = []  # (visitor, customer)
        for item in _flat(items):
            kind = item[0]
            if kind == "document":  # a profile document, encoded (`flows.main.bundle`)
                _, cid, raw, t = item
                profiles[cid] = raw  # a later document of the batch wins
                clock = max(clock, t)
            elif kind == "progress" and item[1] >= 0:  # < 0: not from a partition stream
                progress[item[1]] = max(progress.get(item[1], 0), item[2])
            elif kind == "alert":
                self._alert(pipe, item[1])
                alerts += 1
            elif kind == "model":
                _, name, blob, meta = item
                pipe.hset(store.MODELS, name, blob)
                pipe.hset(store.MODELS_META, name, store.encode(meta))
                models_changed = True
            elif kind == "model_meta":  # figures only: the API reads them on its next reload
                pipe.hset(store.MODELS_META, item[1], store.encode(item[2]))
            elif kind == "dlq":
                _, raw, reason, source = item
                pipe.xadd(store.DLQ, {"raw": raw, "reason": reason, "source": source,
                                      "ts": str(time.time())},
                          maxlen=self.dlq_maxlen, approximate=True)
                pipe.hincrby(store.STATS, "deadlettered", 1)
            elif kind == "unconverted":  # a transaction's currency had no exchange rate
                pipe.hincrby(store.STATS, "unconverted:" + item[1], 1)
            elif kind == "source_state":
                pipe.set(store.SOURCES, store.encode(item[1]))
            elif kind == "value_params":
                pipe.set(store.VALUE_PARAMS, store.encode(item[1]))
                models_changed = True
            elif kind == "watch":
                if item[2] is None:
                    pipe.zrem(store.WATCH, item[1])
                else:
                    pipe.zadd(store.WATCH, {item[1]: item[2]})
            elif kind == "link":
                pipe.set(store.anon(item[1]), item[2])
            elif kind == "spent":  # an internal record that names someone, once done
                pipe.xdel(store.stream(item[1]), item[2])
            elif kind == "owner":  # after this batch's alerts are written
                handovers.append(item[1:])
            elif kind == "adopt":  # through the customer's partition, like any event
                _, cid, given, ts, visitor = item  # once per visitor: identified once
                record = {"type": "adopt", "_internal": True, "customer_id": cid, "ts": ts,
                          "event_id": f"adopt:{visitor}", **given}
                keys, args = store.ingest_args(record, self.partitions, self.dedup_ttl,
                                               self.maxlen, self.cluster)
                self._call(self.ingest, keys, args, pipe)
            elif kind == "forget":
                self._profiles(pipe, profiles)  # in order with the deletes
                pipe.delete(store.customer(item[1]))
                pipe.zrem(store.WATCH, item[1])
                if len(item) > 2 and item[2]:  # merged into a customer on identify
                    signed_in.append((item[1], item[2]))
            elif kind == "erase":
                self._profiles(pipe, profiles)
                self._erase(pipe, *item[1:])
        self._profiles(pipe, profiles)
        for p, seq in progress.items():
            self._call(self.setmax, [store.processed(p)], [seq], pipe)
        if clock:
            self._call(self.setmax, [store.CLOCK], [clock], pipe)
        if self.wire is None:
            pipe.execute()
        elif commands := connect.queued(pipe):
            self.wire.execute(commands)  # the first error reply is raised
        follow.hand_over(self.client, handovers)
        follow.merge_contacts(self.client, signed_in)
        self.alerts_since_trim += alerts
        if self.alerts_since_trim >= TRIM_EVERY:
            self.alerts_since_trim = 0
            self.trim_alerts()
        if models_changed:  # after the models are written (and outside: clusters refuse it)
            self.client.publish(store.MODELS_CHANNEL, b"1")
        if clock >= self.next_sweep:
            self.next_sweep = clock + SWEEP_EVERY_S
            self.sweep(clock)

    def _profiles(self, pipe: Any, profiles: dict[str, bytes]) -> None:
        """The batch's profile documents as one MSET and one SADD: a command per document cost
        the flow more CPU (redis-py packs and parses each) than encoding it. A cluster gets
        one SET per document (MSET keys must share a slot)."""
        if not profiles:
            return
        if self.cluster:
            for cid, doc in profiles.items():
                pipe.set(store.customer(cid), store.compress(doc))
        else:
            pipe.mset({store.customer(cid): store.compress(doc) for cid, doc in profiles.items()})
        if known := [cid for cid in profiles if not cid.startswith("anon:")]:
            pipe.sadd(store.CUSTOMERS, *known)
        profiles.clear()

    def _alert(self, pipe: Any, alert: dict[str, Any]) -> None:
        """The stream feeds live readers (SSE, webhooks); the index and documents serve
        newest-first listing by event time, lookups by id and a customer's own alerts. An alert
        written twice (a replayed batch) keeps its id, so the index holds it once."""
        aid, ts = alert["alert_id"], float(alert.get("ts") or 0.0)
        pipe.xadd(store.ALERTS, {"a": store.encode(alert)}, maxlen=self.alerts_maxlen,
                  approximate=True)
        pipe.hset(store.ALERT_DOCS, aid, store.encode(alert))
        pipe.zadd(store.ALERT_INDEX, {aid: ts})
        if alert.get("customer_id"):
            key = store.customer_alerts(alert["customer_id"])
            pipe.zadd(key, {aid: ts})
            pipe.zremrangebyrank(key, 0, -PER_CUSTOMER_ALERTS - 1)

    def trim_alerts(self) -> None:
        """Keep the alert index and documents as long as the alert stream (oldest out)."""
        excess = int(self.client.zcard(store.ALERT_INDEX)) - self.alerts_maxlen
        if excess <= 0:
            return
        old = self.client.zrange(store.ALERT_INDEX, 0, excess - 1)
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(old), 1000):
            chunk = old[start:start + 1000]
            pipe.zrem(store.ALERT_INDEX, *chunk)
            pipe.hdel(store.ALERT_DOCS, *chunk)
            pipe.hdel(store.ALERT_STATUS, *chunk)
        pipe.execute()

    def _sweeping(self) -> None:
        """Every `SWEEP_WALL_S`, a sweep at the engine clock (its own connections from the
        client's pool; the batches' wire is not shared)."""
        while not self.stopping.wait(SWEEP_WALL_S):
            try:
                if clock := float(self.client.get(store.CLOCK) or 0.0):
                    self.sweep(clock)
            except redis.exceptions.NoScriptError:
                self._load_scripts()
            except redis.RedisError:
                pass  # Redis is away: the next round tries again
            except Exception:  # noqa: BLE001 - a timer that dies would stop every silence alert
                if not self.stopping.is_set():  # not the client closed under it at shutdown
                    LOG.exception("silence sweep failed; trying again in %.0f s", SWEEP_WALL_S)

    def sweep(self, clock: float, rounds: int = 10) -> None:
        """Tick the customers whose silence mattered by `clock` (event time: abnormal, or an
        offer's reward window closed), up to `rounds` x 2,000 of them: the tick goes through
        their partition like any event, so their own state decides."""
        for _ in range(rounds):
            if self._sweep(clock) < SWEEP_BATCH:
                return

    def _sweep(self, clock: float) -> int:
        due = self.client.zrangebyscore(store.WATCH, "-inf", clock, start=0, num=SWEEP_BATCH,
                                        withscores=True)
        if not due:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for member, deadline in due:
            cid = member.decode()
            tick = {"type": "tick", "_internal": True, "customer_id": cid, "ts": clock,
                    "event_id": f"tick:{cid}:{deadline:.0f}"}
            keys, args = store.ingest_args(tick, self.partitions, self.dedup_ttl, self.maxlen,
                                           self.cluster)
            self._call(self.ingest, keys, args, pipe)
            self._call(self.unwatch, [store.WATCH], [cid, repr(deadline)], pipe)
        pipe.execute()
        return len(due)

    def _erase(self, pipe: Any, cid: str, anon_ids: list[str], decisions: list[str],
               record: tuple[Any, ...] = (None, None, None, None)) -> None:
        p, entry_id, event_id, ts = record
        if p is not None and entry_id:  # the erase record names the customer: remove it too
            pipe.xdel(store.stream(p), entry_id)
            pipe.delete(store.seen(p, event_id, self.cluster))
        for key in store.customer_keys(cid):  # one key per DEL: cluster pipelines need it
            pipe.delete(key)
        pipe.srem(store.CUSTOMERS, cid)
        pipe.zrem(store.WATCH, cid)
        for a in anon_ids:
            pipe.delete(store.anon(a))
            pipe.delete(store.customer("anon:" + a))
            # through the anonymous id's partition, in order with its clicks: the identity
            # step forgets the link and what the visitor kept for merging, then deletes this
            unlink = {"type": "unlink", "_internal": True, "anonymous_id": a,
                      "event_id": "unlink", "ts": ts or 0.0}
            self._call(self.record, *store.record_args(unlink, self.partitions, self.maxlen), pipe)
        for d in decisions:
            pipe.delete(store.decision(d))

    def close(self) -> None:
        self.stopping.set()
        if self.wire is not None:
            self.wire.close()
        self.client.close()


def _flat(items: list[tuple[Any, ...]]) -> Any:
    """The batch's items, a customer step's ("writes", [...]) bundle opened in place."""
    for item in items:
        if item[0] == "writes":
            yield from item[1]
        else:
            yield item


class RedisSink(DynamicSink[tuple[Any, ...]]):
    def __init__(self, url: str, dlq_maxlen: int = 100_000, alerts_maxlen: int = 100_000,
                 partitions: int = 4, dedup_ttl: int = 30 * 86400, maxlen: int = 5_000_000) -> None:
        self.url, self.dlq_maxlen, self.alerts_maxlen = url, dlq_maxlen, alerts_maxlen
        self.ingest = (partitions, dedup_ttl, maxlen)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Writer:
        return _Writer(self.url, self.dlq_maxlen, self.alerts_maxlen, self.ingest,
                       timer=worker_index == 0)
