"""A duplicate event id changes nothing: not through the API (ingest dedup), not when a source
redelivers straight into the partition streams (the customer's own memory of event ids), and
not after the flow restarts from its recovery snapshots."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from config import Settings
from engine import store
from engine.events import dumps
from tests.conftest import FlowProcess
from tests.test_features import rich_events

CUSTOMERS = 12


def events_for(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [e for i in range(CUSTOMERS) for e in rich_events(rng, cid=f"d{i}", n=20, span_days=2)]


def profiles(r: redis.Redis) -> dict[str, Any]:
    docs = {f"d{i}": store.decode(r.get(store.customer(f"d{i}"))) for i in range(CUSTOMERS)}
    return {cid: {k: v for k, v in doc.items() if k != "s"} for cid, doc in docs.items()}


def redeliver(r: redis.Redis, settings: Settings, events: list[dict[str, Any]]) -> None:
    """What an at-least-once source does: the same events again, past the ingest dedup."""
    pipe = r.pipeline(transaction=False)
    for e in events:
        keys, _ = store.ingest_args(e, settings.partitions, settings.dedup_ttl_s, 10**6)
        pipe.xadd(keys[0], {"e": dumps(e)})
        pipe.incr(keys[2])
    pipe.execute()


def post(api: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    res = api.post("/v1/events", json=events)
    assert res.status_code == 202, res.text
    return res.json()


def test_duplicates_through_the_api_and_redelivered_change_nothing(api, flow, settings, r):
    events = events_for(1)
    assert post(api, events)["duplicates"] == 0
    flow.drain()
    before = profiles(r)
    assert post(api, events[::2])["duplicates"] == len(events[::2])
    redeliver(r, settings, random.Random(2).sample(events, 80))
    flow.drain()
    assert profiles(r) == before


def start(settings: Settings) -> subprocess.Popen[bytes]:
    """The flow with recovery snapshots (the `flow` fixture runs without)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.data_dir / "flow.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "nextbest.flowrun"],
                            env={**os.environ, **settings.env()}, stdout=log,
                            stderr=subprocess.STDOUT)


def test_duplicates_after_a_restart_from_snapshots_change_nothing(api, settings, tmp_path: Path):
    s = settings.model_copy(update={"flow_recovery": True, "data_dir": tmp_path / "recovering"})
    r = redis.Redis.from_url(str(s.redis_url))
    events = events_for(3)
    proc = start(s)
    drain = FlowProcess.drain
    try:
        probe = FlowProcess.__new__(FlowProcess)
        probe.proc, probe.settings, probe.log = proc, s, s.data_dir / "flow.log"
        post(api, events)
        drain(probe)
        time.sleep(2.5)  # an epoch passes: the state is in a snapshot
        before = profiles(r)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        probe.proc = proc = start(s)
        assert post(api, events)["duplicates"] == len(events)  # ingest still remembers them
        redeliver(r, s, events)  # and a source that does not: every event once more
        drain(probe)
        assert profiles(r) == before

        proc.send_signal(signal.SIGKILL)  # killed before the next snapshot: on restart the
        proc.wait()                        # redelivered events are read and folded in again
        probe.proc = proc = start(s)
        drain(probe)
        time.sleep(2.5)
        assert profiles(r) == before
    finally:
        proc.kill()
        proc.wait()


def test_an_event_id_is_taken_once_whatever_customer_it_names(api, flow, r) -> None:
    """Ingest remembered ids per partition: the same event id sent for 12 customers was taken
    for the 4 whose partitions differed from the first one's."""
    sent = [post(api, [{"event_id": "INV-100", "type": "transaction", "ts": 1.7e9,
                        "customer_id": f"xc{i}", "amount": 50.0}])["duplicates"] for i in range(12)]
    assert sent == [0] + [1] * 11
    flow.drain()
    assert sum(r.exists(store.customer(f"xc{i}")) for i in range(12)) == 1
