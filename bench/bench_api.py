"""Decision API latency at fixed arrival rates while the flow ingests, beside the stack's floor.

    ./nb bench api [--customers 100000] [--rates 500,1000,...] [--workers 1] [--ingest 2000]

Starts the engine (embedded Redis, flow, API), loads simulated customers through the real
ingest path and flow, then for each rate runs an open-loop client (bench/load.py) against
`POST /v1/decisions` and, in the same run, against the floor (bench/floor.py: a bare FastAPI
endpoint returning one Redis hash), while a second client posts events at `--ingest` events/s
(10 per `POST /v1/events`: its own latencies are the events row); then an agent desktop's reads,
`GET /v1/customers/{id}/next-best-action` and `GET /v1/customers/{id}`, at `--agent-rate` each,
beside the same ingest. Prints rate, p50/p90/p99/p99.9 and errors per endpoint, the freshness of
writes, Redis bytes per customer, the machine's yardstick before and after (`bench.machine`),
and writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from bench import load, machine, metrics
from bench.data import START, write_events
from config import Settings
from engine import store
from nextbest.engine import ALL_ROLES, Engine
from nextbest.redis_server import free_port
from nextbest.replay import feed, wait_drained

RESULTS = Path(__file__).parent / "results"
KEY = "bench-key-0123456789"


def _decision(customers: int) -> load.MakeRequest:
    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        cid = f"c{rng.randrange(customers):06d}"
        return "POST", "/v1/decisions", orjson.dumps(
            {"customer_id": cid, "channel": "web", "context": {"page": "home"}})
    return make


def _agent(customers: int, what: str) -> load.MakeRequest:
    """An agent desktop's reads: the next best actions on a call, or the customer's profile."""
    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        cid = f"c{rng.randrange(customers):06d}"
        return "GET", f"/v1/customers/{cid}" + ("/next-best-action" if what == "nba" else ""), None
    return make


def _floor(customers: int) -> load.MakeRequest:
    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        return "GET", f"/floor/c{rng.randrange(customers):06d}", None
    return make


def _events(customers: int, batch: int, run: int = 0) -> load.MakeRequest:
    """Clicks in batches; `run` keeps each ingest client's event ids (and event times) apart
    from the others': the same ids again would be dropped as duplicates at ingest, and the
    flow would have nothing new to process (every step but the first measured so, before)."""
    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        evs = [{"event_id": f"bg{run}-{i}-{k}", "type": "click", "ts": START + 86400 + run * 10_000 + i,
                "customer_id": f"c{rng.randrange(customers):06d}", "action": "product_view",
                "category": rng.choice(["electronics", "fashion", "home", "travel"])}
               for k in range(batch)]
        return "POST", "/v1/events", orjson.dumps(evs)
    return make


def _client(port: int, make: load.MakeRequest, rate: float, duration: float,
            out: Any, seed: int = 1) -> None:
    res = load.run_sync("127.0.0.1", port, make, rate, duration,
                        headers={"Authorization": f"Bearer {KEY}"}, seed=seed)
    out.put(res.summary())


_seeds = itertools.count(1)  # each step's own customers


def measure(port: int, make: load.MakeRequest, rate: float, duration: float,
            redis_url: str | None = None) -> dict[str, Any]:
    """One open-loop step. Each step draws its own customers: with one seed for all, every
    step decided for the previous steps' customers again, who by then had a lead offer kept for
    consistency or had reached their daily cap, so later steps measured ever cheaper decisions
    (`paths` counts how the step's decisions were answered, from /metrics)."""
    before, forks = metrics.scrape(port), _forks(redis_url)
    q: Any = mp.Queue()
    p = mp.Process(target=_client, args=(port, make, rate, duration, q, next(_seeds)))
    p.start()
    res = q.get()
    p.join()
    after = metrics.scrape(port)
    paths = metrics.decision_paths(before)
    res["paths"] = {k: int(v - paths.get(k, 0)) for k, v in metrics.decision_paths(after).items()
                    if v - paths.get(k, 0)}
    res["fallbacks"] = int(metrics.fallbacks(after) - metrics.fallbacks(before))
    res["errors"] += res["fallbacks"]  # a fallback answer is not the engine's decision
    # Redis forks to rewrite its append-only file as it grows (every 40-70 s here): the child
    # (background priority) works for 3-6 s and Redis feeds it, so a step it falls in is marked
    res["aof_rewrites"] = _forks(redis_url) - forks
    return res


def _cpu(engine: Engine) -> dict[str, float]:
    """CPU seconds so far of the API, the flow and Redis (children included)."""
    import psutil

    pids = {"api": engine.procs["api"].pid, "flow": engine.procs["flow"].pid}
    if engine.redis is not None and engine.redis.proc is not None:
        pids["redis"] = engine.redis.proc.pid
    out = {}
    for name, pid in pids.items():
        root = psutil.Process(pid)
        out[name] = sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
    return out


def _forks(redis_url: str | None) -> int:
    return int(redis.Redis.from_url(redis_url).info("stats")["total_forks"]) if redis_url else 0


_runs = itertools.count(1)  # each ingest client's own ids


class Ingest(mp.Process):
    """The background client posting clicks, 10 per `POST /v1/events`; `summary()` waits for
    it to end and gives its own latencies (the events endpoint's row)."""

    def __init__(self, port: int, customers: int, events_per_s: int, duration: float) -> None:
        batch = 10
        self.q: Any = mp.Queue()
        make = _events(customers, batch, next(_runs))
        super().__init__(target=_client, args=(port, make, events_per_s / batch, duration, self.q),
                         daemon=True)
        self.start()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = self.q.get()
        self.join()
        return out

def ingested(port: int) -> float:
    return metrics.new_events(metrics.scrape(port))


def history_rounds(customers: int, bursts: int) -> int:
    """Rounds of 200 customers that give each customer `bursts` activity bursts on average."""
    return max(1, bursts * customers // 200)


def load_customers(settings: Settings, customers: int, console: Any, bursts: int = 1,
                   span_s: float | None = None) -> float:
    """Onboard `customers` and `bursts` activity bursts each (on average), spread over `span_s`
    event seconds (a minute per round of 200 by default), through the API's ingest path and
    the flow; returns events/s end to end."""
    path = Path(tempfile.mkdtemp()) / "events.jsonl"
    rounds = history_rounds(customers, bursts)
    n = write_events(path, customers, rounds=rounds, step=span_s / rounds if span_s else 60.0)
    t = time.monotonic()
    feed(settings, path, console)
    wait_drained(settings, console)
    dt = time.monotonic() - t
    print(f"loaded {customers:,} customers: {n:,} events through ingest + flow in {dt:.0f} s "
          f"({n / dt:,.0f} events/s end to end)", flush=True)
    return n / dt


def load_floor(url: str, customers: int) -> None:
    r = redis.Redis.from_url(url)
    fields = {f"f{k}": str(round(random.random() * 100, 3)) for k in range(30)}
    pipe = r.pipeline(transaction=False)
    for i in range(customers):
        pipe.hset(f"floor:{{c{i:06d}}}", mapping=fields)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def memory_per_customer(url: str, customers: int) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    sample = random.Random(3).sample(range(customers), min(2000, customers))
    per_key = []
    for i in sample:
        cid = f"c{i:06d}"
        keys = [store.customer(cid), store.contact(cid), store.anon(f"anon{i:06d}")]
        per_key.append(sum(r.memory_usage(k) or 0 for k in keys))
    members = r.memory_usage(store.CUSTOMERS) or 0
    return {"profile_bytes_per_customer": round(sum(per_key) / len(per_key) + members / customers, 1),
            "used_memory_total": int(r.info("memory")["used_memory"]),
            "streams_bytes": sum(r.memory_usage(store.stream(p)) or 0 for p in range(8))}


def freshness(api: str, customers: int, probes: int = 200) -> dict[str, float]:
    c = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {KEY}"})
    rng, out = random.Random(5), []
    for n in range(probes):
        cid = f"c{rng.randrange(customers):06d}"
        ev = {"event_id": f"probe-{n}-{time.time_ns()}", "type": "profile", "ts": START + 86400 * 2,
              "customer_id": cid, "attributes": {"probe": n}}
        c.post("/v1/events", json=ev).raise_for_status()
        t = time.perf_counter()
        while c.get(f"/v1/customers/{cid}").json()["attributes"].get("probe") != n:
            if time.perf_counter() - t > 5:
                break
            time.sleep(0.001)
        out.append(time.perf_counter() - t)
        time.sleep(0.02)
    out.sort()
    return {"probes": probes, "p50_ms": round(out[len(out) // 2] * 1000, 1),
            "p99_ms": round(out[int(0.99 * len(out))] * 1000, 1), "max_ms": round(out[-1] * 1000, 1)}


def main(argv: list[str]) -> None:
    from rich.console import Console

    ap = argparse.ArgumentParser(prog="bench api")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--rates", default="500,1000,1500,2000,2500,3000")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--ingest", type=int, default=2000)
    ap.add_argument("--agent-rate", type=float, default=100.0)
    args = ap.parse_args(argv)
    console = Console()
    data = Path(tempfile.mkdtemp(prefix="nb-bench-"))
    settings = Settings(data_dir=data, api_port=free_port(), api_workers=args.workers,
                        api_keys={KEY: ALL_ROLES}, flow_recovery=False)
    rates = [float(x) for x in args.rates.split(",")]
    results: dict[str, Any] = {"customers": args.customers, "api_workers": args.workers,
                               "ingest_events_per_s": args.ingest, "machine": f"{os.cpu_count()} cores"}
    results["yardstick_before"] = machine.measure()  # how fast the machine is right now
    print(machine.describe(results["yardstick_before"]), flush=True)
    with Engine(settings) as engine:
        results["load_events_per_s"] = load_customers(settings, args.customers, console)
        load_floor(str(settings.redis_url), args.customers)
        results["memory"] = memory_per_customer(str(settings.redis_url), args.customers)
        floor_port = free_port()
        env = {**os.environ, "REDIS_URL": str(settings.redis_url)}
        floor = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "bench.floor:app",
                                  "--port", str(floor_port), "--workers", str(args.workers),
                                  "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                                  "--log-level", "warning"], env=env)
        time.sleep(3)
        try:
            rows = []
            url = str(settings.redis_url)
            for rate in rates:
                fed = ingested(settings.api_port)
                bg = Ingest(settings.api_port, args.customers, args.ingest, args.duration + 2)
                cpu, t = _cpu(engine), time.monotonic()
                dec = measure(settings.api_port, _decision(args.customers), rate, args.duration, url)
                dec["cpu_cores"] = {k: round((v - cpu[k]) / (args.duration + 1.0), 2)  # + warm-up
                                    for k, v in _cpu(engine).items()}
                dec["ingested_per_s"] = round((ingested(settings.api_port) - fed)
                                              / (time.monotonic() - t))
                events = bg.summary()
                fed = ingested(settings.api_port)
                bg = Ingest(settings.api_port, args.customers, args.ingest, args.duration + 2)
                t = time.monotonic()
                flo = measure(floor_port, _floor(args.customers), rate, args.duration, url)
                flo["ingested_per_s"] = round((ingested(settings.api_port) - fed)
                                              / (time.monotonic() - t))
                bg.summary()
                rows.append({"decisions": dec, "floor": flo, "events (10 per POST)": events})
                print(f"rate {rate:>6.0f}/s  decisions p50 {dec['p50_ms']:.2f} p99 {dec['p99_ms']:.2f} "
                      f"errors {dec['errors']} AOF rewrites {dec['aof_rewrites']} "
                      f"CPU cores {dec['cpu_cores']}  |  floor p50 "
                      f"{flo['p50_ms']:.2f} p99 {flo['p99_ms']:.2f} AOF rewrites {flo['aof_rewrites']}"
                      f"  |  new events/s {dec['ingested_per_s']}, {flo['ingested_per_s']}"
                      f"  |  decisions answered {dec['paths']}",
                      flush=True)
            results["rates"] = rows
            results["agent"] = {}  # an agent desktop's reads, at --agent-rate, beside the ingest
            for name, what in (("next-best-action", "nba"), ("profile", "profile")):
                bg = Ingest(settings.api_port, args.customers, args.ingest, args.duration + 2)
                results["agent"][name] = measure(settings.api_port, _agent(args.customers, what),
                                                 args.agent_rate, args.duration, url)
                bg.summary()
            bg = Ingest(settings.api_port, args.customers, args.ingest, 30)
            results["freshness"] = freshness(engine.api_url, args.customers)
            bg.terminate()
        finally:
            floor.terminate()
            floor.wait()
    results["yardstick_after"] = machine.measure()
    print(machine.describe(results["yardstick_after"]) + " (after)", flush=True)
    ok = [r["decisions"]["rate"] for r in results["rates"] if r["decisions"]["p99_ms"] < 10
          and r["decisions"]["errors"] == 0]
    results["max_rate_p99_under_10ms"] = max(ok) if ok else None
    print_table(results)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


def print_table(res: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Each endpoint (decisions beside the floor), {res['customers']:,} customers, "
                    f"{res['api_workers']} API worker(s), flow ingesting {res['ingest_events_per_s']}/s")
    for col in ("endpoint", "rate/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "errors",
                "AOF rewrites", "events in/s"):
        t.add_column(col, justify="right")
    rows = [(name, row[name]) for row in res["rates"] for name in row]
    rows += list(res.get("agent", {}).items())
    for name, r in rows:
        t.add_row(name, f"{r['rate']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                  f"{r['p99_ms']:.2f}", f"{r['p999_ms']:.2f}", str(r["errors"]),
                  str(r.get("aof_rewrites", "")), str(r.get("ingested_per_s", "")))
    Console().print(t)
    print(f"highest decision rate with p99 < 10 ms: {res['max_rate_p99_under_10ms']}")
    print(f"freshness (POST /v1/events returned -> visible in GET /v1/customers): {res['freshness']}")
    print(f"memory: {res['memory']}")


if __name__ == "__main__":
    main(sys.argv[1:])
