"""Crash and restart: kill -9 the flow mid-stream, restart it, and get exactly what an
uninterrupted run gets. Real Redis, the real flow process with bytewax recovery."""

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
from rich.console import Console

from bench.data import write_events
from config import Settings
from engine import store
from nextbest.replay import feed


def start_flow(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.env()}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = (settings.data_dir / "flow.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "nextbest.flowrun"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def pending(settings: Settings) -> int:
    c = redis.Redis.from_url(str(settings.redis_url))
    return sum(int(c.get(store.ingested(p)) or 0) - int(c.get(store.processed(p)) or 0)
               for p in range(settings.partitions))


def drain(settings: Settings, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pending(settings) > 0:
        assert proc.poll() is None, (settings.data_dir / "flow.log").read_text()[-3000:]
        assert time.monotonic() < deadline, f"{pending(settings)} events still pending"
        time.sleep(0.1)
    time.sleep(2.5)  # one more epoch: model publication happens at batch ends


def state_of(url: str) -> dict[str, Any]:
    c = redis.Redis.from_url(url)
    # stored model scores ("s") depend on which model version the flow had loaded when it
    # wrote the document (wall-clock timing); the API recomputes them on read. Everything the
    # events determine must be equal.
    docs = {k.decode(): {f: v for f, v in store.decode(c.get(k)).items() if f != "s"}
            for k in c.scan_iter(match="nb:c:*", count=1000)}
    metas = {k.decode(): store.decode(v) for k, v in c.hgetall(store.MODELS_META).items()}
    models = {n: (m["examples"], m["positives"], m["performance"]) for n, m in metas.items()}
    raised = [store.decode(f[b"a"]) for _, f in c.xrange(store.ALERTS)]
    alerts = sorted({(a["type"], (a.get("data") or {}).get("signal", ""), a["alert_id"])
                     for a in raised})
    return {"docs": docs, "models": models, "alerts": alerts,
            "customers": c.scard(store.CUSTOMERS)}


def run(settings: Settings, events: Path, kills: int, rng: random.Random) -> dict[str, Any]:
    redis.Redis.from_url(str(settings.redis_url)).flushall()
    feed(settings, events, Console(quiet=True))
    proc = start_flow(settings)
    for _ in range(kills):
        time.sleep(rng.uniform(1.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert pending(settings) > 0, "the flow finished before it could be killed"
        proc = start_flow(settings)
    try:
        drain(settings, proc)
    finally:
        proc.kill()
        proc.wait()
    return state_of(str(settings.redis_url))


def test_kill_minus_9_loses_nothing_and_counts_nothing_twice(redis_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    n = write_events(events, customers=3000, rounds=150, seed=11)
    base = dict(redis_url=redis_url, partitions=2, model_publish_every=1, flow_batch=200,
                model_secret="s", api_keys={})
    clean = run(Settings(data_dir=tmp_path / "clean", **base), events, 0, random.Random(1))
    crashed = run(Settings(data_dir=tmp_path / "crashed", **base), events, 3, random.Random(2))
    assert n > 30_000 and clean["customers"] == 3000
    assert crashed["customers"] == clean["customers"]
    assert crashed["models"] == clean["models"]
    assert crashed["alerts"] == clean["alerts"], sorted(set(crashed["alerts"]) ^ set(clean["alerts"]))
    assert crashed["docs"].keys() == clean["docs"].keys()
    differing = [k for k in clean["docs"] if crashed["docs"][k] != clean["docs"][k]]
    if differing:
        a, b = clean["docs"][differing[0]], crashed["docs"][differing[0]]
        diff = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
        diff = {k: v if k != "f" else {f: (v[0][f], v[1].get(f)) for f in v[0] if v[0][f] != v[1].get(f)}
                for k, v in diff.items()}
    assert not differing, f"{len(differing)} customers differ, e.g. {differing[0]}: {diff}"
