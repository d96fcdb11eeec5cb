"""The measurements behind the capacity plan in docs/scale.md.

    .venv/bin/python docs/capacity.py flow      # events/s: 1 worker, 2 processes, on a 3-node cluster; bytes per customer
    .venv/bin/python docs/capacity.py flowcpu   # CPU per event of the flow and of Redis
    .venv/bin/python docs/capacity.py state     # flow state per customer: snapshots and memory
    .venv/bin/python docs/capacity.py api 1     # decisions/s, latency and API CPU per decision (1 uvicorn worker)

10,000 simulated customers each; everything runs on this machine, so elapsed rates depend on what
else runs, and CPU time per unit of work is the steadier figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_api, bench_flow
from bench.data import write_events
from config import Settings, connect
from nextbest.cluster import LocalCluster
from nextbest.engine import Engine
from nextbest.redis_server import RedisServer, free_port, listen_ports
from nextbest.replay import feed

CUSTOMERS = 10_000
ALL = ["admin", "ingest", "decide", "agent", "sales"]


def _settings(url: str, data: Path, **kw: Any) -> Settings:
    return Settings(redis_url=url, data_dir=data, partitions=4, model_secret="x",
                    **{"api_keys": {}, "flow_recovery": False, **kw})


def _cpu(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


def _wait_processed(c: Any, partitions: int = 4) -> None:
    while True:
        total, done = bench_flow.counts(c, partitions)
        if done >= total:
            return
        time.sleep(0.2)


def flow(tmp: Path) -> dict[str, Any]:
    events = tmp / "events.jsonl"
    out: dict[str, Any] = {"events": write_events(events, CUSTOMERS, 200)}
    with RedisServer(tmp / "redis") as server:
        s = _settings(server.url, tmp / "d")
        addrs = ";".join(f"127.0.0.1:{p}" for p in listen_ports(2))
        for name, layout in (("1x1", [[]]), ("2 processes x 1", [["-i", "0", "-a", addrs],
                                                                  ["-i", "1", "-a", addrs]])):
            redis.Redis.from_url(server.url).flushall()
            feed(s, events, Console(quiet=True))
            out[name] = {**bench_flow.timed_run(s, layout), "loadavg": os.getloadavg()[0]}
        out["memory"] = bench_flow.memory(server.url, CUSTOMERS)
    with LocalCluster(tmp / "cluster") as cluster:
        s = _settings(cluster.url, tmp / "dc")
        feed(s, events, Console(quiet=True))
        bench_flow.redis.Redis.from_url = staticmethod(connect.client)  # type: ignore[method-assign]
        out["1x1 on a 3-node Redis Cluster"] = bench_flow.timed_run(s, [[]])
    return out


def flowcpu(tmp: Path) -> dict[str, Any]:
    events = tmp / "events.jsonl"
    write_events(events, CUSTOMERS, 200)
    with RedisServer(tmp / "redis") as server:
        s = _settings(server.url, tmp / "d")
        feed(s, events, Console(quiet=True))
        assert server.proc is not None
        redis0 = _cpu(server.proc.pid)
        proc = subprocess.Popen([sys.executable, "-m", "nextbest.flowrun", "--no-recovery"],
                                env={**os.environ, **s.env()})
        c = redis.Redis.from_url(server.url)
        _wait_processed(c)
        total = bench_flow.counts(c, 4)[0]
        flow_cpu, redis_cpu = _cpu(proc.pid), _cpu(server.proc.pid) - redis0
        proc.kill()
        proc.wait()
    return {"events": total, "flow_cpu_us_per_event": round(flow_cpu / total * 1e6, 1),
            "redis_cpu_us_per_event": round(redis_cpu / total * 1e6, 1),
            "loadavg": os.getloadavg()[0]}


def state(tmp: Path) -> dict[str, Any]:
    events = tmp / "events.jsonl"
    write_events(events, CUSTOMERS, 200)
    with RedisServer(tmp / "redis") as server:
        s = _settings(server.url, tmp / "d", flow_recovery=True)
        feed(s, events, Console(quiet=True))
        env = {**os.environ, **s.env()}
        base = subprocess.Popen([sys.executable, "-c", "import flows.main, time; time.sleep(8)"],
                                env=env)
        time.sleep(7)
        rss0 = psutil.Process(base.pid).memory_info().rss
        base.wait()
        proc = subprocess.Popen([sys.executable, "-m", "nextbest.flowrun"], env=env)
        _wait_processed(redis.Redis.from_url(server.url))
        time.sleep(6)  # the last snapshot
        rss = psutil.Process(proc.pid).memory_info().rss
        proc.kill()
        proc.wait()
        size = sum(f.stat().st_size for f in (s.data_dir / "recovery").rglob("part-*"))
    return {"memory_bytes_per_customer": round((rss - rss0) / CUSTOMERS),
            "snapshot_bytes_per_customer": round(size / CUSTOMERS)}


def api(tmp: Path, workers: int) -> list[dict[str, Any]]:
    out = []
    with RedisServer(tmp / "redis") as server:
        s = _settings(server.url, tmp / "d", api_keys={bench_api.KEY: ALL}, api_port=free_port(),
                      api_workers=workers)
        with Engine(s) as engine:
            bench_api.load_customers(s, CUSTOMERS, Console(quiet=True))
            for concurrency in (1, 4, 16):
                before = _cpu(engine.procs["api"].pid)
                res = asyncio.run(_closed_loop(engine.api_url, concurrency, 8.0))
                res["api_cpu_ms_per_decision"] = round(
                    (_cpu(engine.procs["api"].pid) - before) * 1000 / res["decisions"], 3)
                res["fallbacks"] = bench_api.fallbacks(s.api_port)
                out.append(res)
    return out


async def _closed_loop(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {bench_api.KEY}"}) as c:
        async def client() -> None:
            rng = random.Random()
            while time.perf_counter() < end:
                t = time.perf_counter()
                res = await c.post("/v1/decisions", json={
                    "customer_id": f"c{rng.randrange(CUSTOMERS):06d}", "channel": "web",
                    "context": {"page": "home"}})
                latencies.append(time.perf_counter() - t)
                assert res.status_code == 200, res.text
        await asyncio.gather(*[client() for _ in range(concurrency)])
    latencies.sort()
    return {"concurrency": concurrency, "decisions": len(latencies),
            "per_s": round(len(latencies) / seconds),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "loadavg": os.getloadavg()[0]}


def main(argv: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nb-capacity-"))
    what = argv[0] if argv else "flow"
    res: Any = api(tmp, int(argv[1]) if len(argv) > 1 else 1) if what == "api" else \
        {"flow": flow, "flowcpu": flowcpu, "state": state}[what](tmp)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
