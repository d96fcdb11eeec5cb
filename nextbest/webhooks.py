"""The webhook worker: `python -m nextbest.webhooks` (`nextbest up` and `demo` start it).

A process of its own, so a slow or dead receiver never holds up the flow or the API. Alerts
are read from the alerts stream through a consumer group; every alert x matching subscription
(`rules/webhooks.yaml`, see `engine/webhooks.py`) becomes one pending delivery in Redis (a
zset per subscription, scored by when it is due) before the stream entry is acknowledged, so
a crash at any point re-reads the entry and re-creates the same delivery, never a second one.
A delivery is removed once a 2xx answers it, and its id is remembered for
`webhook_done_ttl_s`; a retry or a restart never posts a remembered id again. Only a POST
that was in flight when the process was killed (not stopped: SIGTERM waits for it) can reach a
receiver twice, with the same `X-Nextbest-Delivery`, which receivers deduplicate on.

`python -m nextbest.webhooks --failed` prints the deliveries that were given up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import redis

from config import Settings, connect, get_settings
from engine import store
from engine import webhooks as wh

log = logging.getLogger("nextbest.webhooks")
CONSUMER = "worker"
CONFIG_EVERY_S = 1.0


class Worker:
    """Reads alerts into pending deliveries and posts those that are due."""

    def __init__(self, settings: Settings, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.s, self.rng, self.clock = settings, rng or random.Random(), clock
        self.config = wh.Subscriptions(settings.rules_dir / "webhooks.yaml", os.environ)
        self._reload()
        url = str(settings.redis_url)
        self.r = connect.async_client(url)
        self.reader = connect.async_client(url)  # blocking reads hold their own connection
        self.http = httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False)
        self.inflight: dict[str, set[str]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        while not self.stopping.is_set():
            try:
                await self._ensure_group()
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("webhooks: Redis unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
        reader = asyncio.create_task(self._read_loop())
        try:
            await self._dispatch_loop()
        finally:
            # a read cut short leaves its entries unacknowledged: the next start re-reads them
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if self.tasks:  # let POSTs in flight finish and be recorded (bounded by the timeout)
                await asyncio.wait(self.tasks)
            await self.http.aclose()
            await self.r.aclose()
            await self.reader.aclose()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def _ensure_group(self) -> None:
        """The group starts at the stream's end the first time: alerts from before webhooks
        ever ran are not sent. After that, its position survives restarts."""
        try:
            await self.r.xgroup_create(store.ALERTS, store.WEBHOOK_GROUP, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- alerts stream -> pending deliveries ------------------------------------------------

    async def _read_loop(self) -> None:
        last = "0"  # first what this consumer read but did not acknowledge before a crash
        while not self.stopping.is_set():
            try:
                res = await self.reader.xreadgroup(store.WEBHOOK_GROUP, CONSUMER,
                                                   {store.ALERTS: last}, count=200, block=1000)
                entries = res[0][1] if res else []
                if last == "0" and not entries:
                    last = ">"
                elif entries:
                    await self.enqueue(entries)
                    self.wake.set()
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._ensure_group()  # the stream was deleted (e.g. a flushed Redis)
                else:
                    log.error("webhooks: reading alerts failed: %s", exc)
                    await asyncio.sleep(1.0)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("webhooks: Redis unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:  # unacknowledged entries are read again: keep going
                log.exception("webhooks: reading alerts failed")
                await asyncio.sleep(1.0)

    async def enqueue(self, entries: list[Any]) -> None:
        """One pending delivery per alert x matching subscription, then acknowledge the entries."""
        now = self.clock()
        found: list[tuple[str, str, bytes]] = []
        for entry_id, fields in entries:
            raw = (fields or {}).get(b"a")
            alert = _decode(raw)
            if not isinstance(alert, dict) or "alert_id" not in alert:
                continue  # trimmed away or unreadable: nothing to deliver
            for sub in self.config.subs:
                if sub.wants(alert):
                    did = wh.delivery_id(str(alert["alert_id"]), sub.id)
                    job = {"sub": sub.id, "stream_id": entry_id.decode(),
                           "alert_id": alert["alert_id"], "attempts": 0, "first": now}
                    found.append((did, sub.id, store.encode(job)))
        if found:
            pipe = self.r.pipeline(transaction=False)
            for did, _, _ in found:
                pipe.exists(store.webhook_done(did))
            done = await pipe.execute()
            pipe = self.r.pipeline(transaction=False)
            for (did, sid, job), was_done in zip(found, done):
                if not was_done:
                    pipe.hsetnx(store.WEBHOOK_JOBS, did, job)
                    pipe.zadd(store.webhook_due(sid), {did: now}, nx=True)
            await pipe.execute()
        await self.r.xack(store.ALERTS, store.WEBHOOK_GROUP, *[e for e, _ in entries])

    # -- pending deliveries -> POSTs ---------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        next_config = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_config:
                self._reload()
                next_config = time.monotonic() + CONFIG_EVERY_S
            wait = CONFIG_EVERY_S
            try:
                for sub in self.config.subs:
                    wait = min(wait, await self._start_due(sub))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("webhooks: Redis unavailable (%s); retrying", exc)
            except Exception:  # pending deliveries stay in Redis: keep going
                log.exception("webhooks: dispatching deliveries failed")
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.01, wait))
            except TimeoutError:
                pass

    def _reload(self) -> None:
        if not self.config.refresh():
            return
        if self.config.error:
            log.error("webhooks reload failed, keeping the previous subscriptions: %s",
                      self.config.error)
        else:
            log.info("webhooks: %d subscriptions (%s)", len(self.config.subs),
                     ", ".join(s.id for s in self.config.subs) or "none")

    async def _start_due(self, sub: wh.Subscription) -> float:
        """Start this subscription's due deliveries (at most `webhook_concurrency` in flight);
        returns the seconds until its next one is due."""
        busy = self.inflight.setdefault(sub.id, set())
        free = self.s.webhook_concurrency - len(busy)
        if free <= 0:
            return CONFIG_EVERY_S
        now = self.clock()
        head = await self.r.zrange(store.webhook_due(sub.id), 0, free + len(busy) - 1,
                                   withscores=True)
        for member, due in head:
            did = member.decode()
            if due > now:
                return due - now
            if did not in busy and len(busy) < self.s.webhook_concurrency:
                busy.add(did)
                task = asyncio.create_task(self._deliver(sub, did))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return CONFIG_EVERY_S

    async def _deliver(self, sub: wh.Subscription, did: str) -> None:
        try:
            await self._attempt(sub, did)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("webhooks: Redis unavailable during %s (%s)", did, exc)
        except Exception:  # one bad delivery must not end the worker, nor spin: try it later
            log.exception("webhooks: delivery %s failed unexpectedly", did)
            with contextlib.suppress(Exception):
                later = self.clock() + self.s.webhook_backoff_max_s
                await self.r.zadd(store.webhook_due(sub.id), {did: later}, xx=True)
        finally:
            self.inflight.get(sub.id, set()).discard(did)
            self.wake.set()

    async def _attempt(self, sub: wh.Subscription, did: str) -> None:
        job = _decode(await self.r.hget(store.WEBHOOK_JOBS, did))
        if not isinstance(job, dict) or await self.r.exists(store.webhook_done(did)):
            await self._forget(sub.id, did)  # already delivered, or nothing left to deliver
            return
        alert = await self._alert(job)
        if alert is None:
            await self._fail(did, job, "the alert is no longer in the stream (erased or trimmed)")
            return
        body = orjson.dumps({"delivery_id": did, "subscription_id": sub.id, "alert": alert})
        ts = int(self.clock())
        headers = {"Content-Type": "application/json", "User-Agent": "nextbest-webhooks",
                   "X-Nextbest-Delivery": did, "X-Nextbest-Event": str(alert.get("type")),
                   "X-Nextbest-Timestamp": str(ts), "X-Nextbest-Attempt": str(job["attempts"] + 1),
                   "X-Nextbest-Signature": wh.sign(sub.secret, ts, body)}
        status, error, retry_after, final = None, "", 0.0, False
        try:
            res = await self.http.post(sub.url, content=body, headers=headers)
            status, error = res.status_code, f"HTTP {res.status_code}"
            retry_after = wh.retry_after_s(res.headers.get("retry-after"))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:  # another try won't help
            error, final = f"{type(exc).__name__}: {exc}"[:300], True
        except httpx.HTTPError as exc:  # network, TLS, timeouts: worth another try
            error = f"{type(exc).__name__}: {exc}"[:300]
        if status is not None and 200 <= status < 300:
            await self._done(sub.id, did)
            return
        job["attempts"] += 1
        job["error"] = error
        now = self.clock()
        if final or not wh.retryable(status) or wh.give_up(job["attempts"], job["first"], now,
                                                  self.s.webhook_max_attempts,
                                                  self.s.webhook_max_age_s):
            await self._fail(did, job, error)
            return
        delay = wh.backoff_s(job["attempts"], self.s.webhook_backoff_s,
                             self.s.webhook_backoff_max_s, self.rng.random())
        delay = max(delay, min(retry_after, self.s.webhook_backoff_max_s))
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(store.WEBHOOK_JOBS, did, store.encode(job))
        pipe.zadd(store.webhook_due(sub.id), {did: now + delay})
        pipe.hincrby(store.WEBHOOK_STATS, "retried", 1)
        await pipe.execute()

    async def _alert(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The alert as it is now (read at each attempt, so an erased one is never sent)."""
        entries = await self.r.xrange(store.ALERTS, min=job["stream_id"], max=job["stream_id"])
        alert = _decode(entries[0][1].get(b"a")) if entries else None
        if not isinstance(alert, dict):
            return None
        status = await self.r.hget(store.ALERT_STATUS, str(alert.get("alert_id")))
        if status is not None:
            alert["status"] = status.decode()
        return alert

    async def _done(self, sid: str, did: str) -> None:
        pipe = self.r.pipeline(transaction=False)  # done first: a crash after it sends nothing
        pipe.set(store.webhook_done(did), b"1", ex=self.s.webhook_done_ttl_s)
        pipe.hdel(store.WEBHOOK_JOBS, did)
        pipe.zrem(store.webhook_due(sid), did)
        pipe.hincrby(store.WEBHOOK_STATS, "delivered", 1)
        await pipe.execute()

    async def _forget(self, sid: str, did: str) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hdel(store.WEBHOOK_JOBS, did)
        pipe.zrem(store.webhook_due(sid), did)
        await pipe.execute()

    async def _fail(self, did: str, job: dict[str, Any], error: str) -> None:
        log.warning("webhooks: giving up delivery %s to %s after %d attempts: %s",
                    did, job["sub"], job.get("attempts", 0), error)
        record = {"delivery_id": did, "subscription_id": job["sub"], "alert_id": job["alert_id"],
                  "stream_id": job["stream_id"], "attempts": job.get("attempts", 0),
                  "first": job["first"], "failed_at": self.clock(), "error": error}
        pipe = self.r.pipeline(transaction=False)
        pipe.lpush(store.WEBHOOK_FAILED, store.encode(record))
        pipe.ltrim(store.WEBHOOK_FAILED, 0, self.s.webhook_failed_maxlen - 1)
        pipe.hdel(store.WEBHOOK_JOBS, did)
        pipe.zrem(store.webhook_due(job["sub"]), did)
        pipe.hincrby(store.WEBHOOK_STATS, "failed", 1)
        await pipe.execute()


def _decode(raw: bytes | None) -> Any:
    try:
        return store.decode(raw)
    except orjson.JSONDecodeError:
        return None


def failed(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """The deliveries given up, newest first."""
    client = connect.client(str(settings.redis_url))
    return [store.decode(x) for x in client.lrange(store.WEBHOOK_FAILED, 0, limit - 1)]


async def serve(settings: Settings) -> None:
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nextbest.webhooks")
    ap.add_argument("--failed", type=int, nargs="?", const=50, default=None,
                    help="print the last N deliveries that were given up, then exit")
    args = ap.parse_args(argv)
    settings = get_settings()
    if args.failed is not None:
        for record in failed(settings, args.failed):
            print(orjson.dumps(record).decode())
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per POST
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
