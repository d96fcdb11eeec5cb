"""Nothing lost: a Redis crash with append-only persistence, and an API process killed
mid-ingest. Real processes, killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from config import Settings
from engine import store
from nextbest.engine import Engine
from nextbest.redis_server import RedisServer, free_port
from tests.conftest import ALL, KEY, FlowProcess, ev

T0 = 1_767_225_600.0


def test_redis_crash_loses_no_acknowledged_event(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    s = Settings(redis_url=server.url, data_dir=tmp_path / "d", api_keys={KEY: ALL},
                 model_secret="x", partitions=2, flow_recovery=False)
    flow = FlowProcess(s)
    try:
        with TestClient(create_app(s), headers={"Authorization": f"Bearer {KEY}"}) as api:
            for b in range(20):
                batch = [ev(f"e{b}-{i}", "click", T0 + i, f"c{i % 50}", category="home")
                         for i in range(100)]
                assert api.post("/v1/events", json=batch).status_code == 202
            server.kill()  # right after the last 202: no graceful shutdown, no fsync wait
            down = api.post("/v1/events", json=[ev("late", "click", T0, "c1")])
            assert down.status_code == 503 and "unavailable" in down.json()["error"]["message"]
            server.start()  # same port, same append-only file
            flow.drain(timeout=90)
            c = redis.Redis.from_url(server.url)
            total = sum(store.decode(c.get(store.customer(f"c{i}")))["f"].get("click_count_90d", 0)
                        for i in range(50))
            assert total == 2000
            assert api.post("/v1/events", json=[ev("after", "click", T0, "c1")]).status_code == 202
    finally:
        flow.stop()
        server.stop()


def test_api_killed_mid_ingest_every_acknowledged_event_is_processed_once(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_port=free_port(), api_keys={KEY: ALL}, model_secret="x",
                 partitions=2, flow_recovery=False)
    acked: list[str] = []
    stop = threading.Event()

    def client(url: str) -> None:
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
        n = 0
        while not stop.is_set():
            batch = [ev(f"k{n}-{i}", "click", T0, f"k{n}-{i}") for i in range(20)]
            n += 1
            try:
                if c.post("/v1/events", json=batch).status_code == 202:
                    acked.extend(e["customer_id"] for e in batch)
            except httpx.HTTPError:
                time.sleep(0.05)

    with Engine(s) as engine:
        t = threading.Thread(target=client, args=(engine.api_url,))
        t.start()
        time.sleep(2.0)
        api = engine.procs["api"]
        os.killpg(api.pid, signal.SIGKILL)  # mid-ingest
        api.wait()
        before = len(acked)
        engine.start_api()  # back up on the same port
        time.sleep(1.0)
        stop.set()
        t.join()
        assert before > 100 and len(acked) > before
        c = redis.Redis.from_url(str(s.redis_url))
        deadline = time.monotonic() + 60
        while sum(int(c.get(store.ingested(p)) or 0) - int(c.get(store.processed(p)) or 0)
                  for p in range(2)) and time.monotonic() < deadline:
            time.sleep(0.1)
        pipe = c.pipeline(transaction=False)
        for cid in acked:
            pipe.get(store.customer(cid))
        docs = pipe.execute()
        counts = [store.decode(d)["f"].get("click_count_90d", 0) if d else 0 for d in docs]
        assert counts.count(1) == len(acked), f"{counts.count(0)} acknowledged events missing"


def test_the_rewrite_child_runs_as_idle_background_work_and_loses_nothing(tmp_path: Path) -> None:
    """Redis's fork child (the append-only file's rewrite) is set to SCHED_IDLE by the server's
    watcher; the rewrite still completes, and a restart reads back every key."""
    with RedisServer(tmp_path / "redis") as server:
        r = redis.Redis.from_url(server.url)
        r.mset({f"k{i}": i for i in range(300)})
        r.config_set("rdb-key-save-delay", 5000)  # 5 ms per key: the child lives ~1.5 s
        r.bgrewriteaof()
        path = f"/proc/{server.proc.pid}/task/{server.proc.pid}/children"  # type: ignore[union-attr]
        deadline, children = time.monotonic() + 1.0, []
        while time.monotonic() < deadline and not children:
            children = [int(p) for p in Path(path).read_text().split()]
            time.sleep(0.01)
        assert children, "no rewrite child seen"
        time.sleep(0.2)  # the watcher looks every 50 ms; the child lives ~1.5 s
        assert all(os.sched_getscheduler(p) == os.SCHED_IDLE for p in children)
        r.config_set("rdb-key-save-delay", 0)
        while r.info("persistence")["aof_rewrite_in_progress"]:
            time.sleep(0.05)
        assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        server.kill()
        server.start()
        assert redis.Redis.from_url(server.url).mget([f"k{i}" for i in range(300)]) == \
            [str(i).encode() for i in range(300)]
