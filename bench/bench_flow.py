"""Flow throughput with every Redis write, and Redis memory per customer.

    ./nb bench flow [--customers 20000] [--rounds 400]

Feeds a simulated event file into the partition streams, then runs the real flow (as
`nextbest up` does) with 1 worker, as 2 processes x 1 worker (both without recovery
snapshots), and as 1 worker with recovery on (the default of `nextbest up`: state snapshots
every epoch), and times each from the first
processed event to the last (start-up excluded). Prints events/s and the flow processes' CPU
seconds per 1,000 events (user + system, the steadier figure on a shared machine) for each,
and Redis bytes per customer (MEMORY USAGE of every per-customer key, sampled).

Then, live: the 1-worker flow, its backlog drained, gets clicks at a steady `--live-rate` for
`--live-seconds`, each for a random customer of the population, appended by the ingest path's
own script (as `POST /v1/events` appends them). A busy site's events rarely share a customer
within a batch, so each costs its customer's features, rules and document write: the CPU per
event here is what sizes a live deployment, beside the backlog's throughput.
Before and after, the machine's yardstick (`bench.machine`).
Writes bench/results/flow.json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import redis
from rich.console import Console

from bench import machine
from bench.data import START, write_events
from config import Settings
from engine import store
from nextbest.redis_server import RedisServer, listen_ports
from nextbest.replay import feed

RESULTS = Path(__file__).parent / "results"


def counts(c: redis.Redis, partitions: int) -> tuple[int, int]:
    ins = sum(int(c.get(store.ingested(p)) or 0) for p in range(partitions))
    done = sum(int(c.get(store.processed(p)) or 0) for p in range(partitions))
    return ins, done


def timed_run(settings: Settings, layout: list[list[str]],
              live: dict[str, Any] | None = None) -> dict[str, Any]:
    """The flow as `layout` (flowrun arguments per process) over what is in the streams; with
    `settings.flow_recovery`, snapshots are taken as in production. With `live` (`live_load`'s
    arguments), the drained flow then gets a live load, measured under "live"."""
    c = redis.Redis.from_url(str(settings.redis_url))
    env = {**os.environ, **settings.env()}
    off = [] if settings.flow_recovery else ["--no-recovery"]
    procs = [subprocess.Popen([sys.executable, "-m", "nextbest.flowrun", *off, *a],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for a in layout]
    try:
        total, done = counts(c, settings.partitions)
        while done == 0:
            time.sleep(0.005)
            total, done = counts(c, settings.partitions)
        start, first, cpu0 = time.perf_counter(), done, cpu_seconds(procs)
        while done < total:
            time.sleep(0.02)
            total, done = counts(c, settings.partitions)
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(procs) - cpu0
        after = live_load(settings, procs, **live) if live else None
    finally:
        for p in procs:
            p.kill()
            p.wait()
    n = total - first
    out = {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
           "cpu_s": round(cpu, 2), "cpu_s_per_1000_events": round(1000 * cpu / n, 4)}
    return {**out, "live": after} if after else out


def live_load(settings: Settings, procs: list[subprocess.Popen[bytes]], customers: int,
              rate: int, seconds: float, ts: float) -> dict[str, Any]:
    """Clicks at `rate`/s for random customers, appended with `store.INGEST_LUA` every 10 ms;
    the flow's CPU per event, and how far behind it was at the end (the ingest counter less
    the processed one: a flow that keeps up is within a read or two)."""
    c = redis.Redis.from_url(str(settings.redis_url))
    sha = c.script_load(store.INGEST_LUA)
    rng = random.Random(7)
    n, cpu0, start = 0, cpu_seconds(procs), time.perf_counter()
    while (now := time.perf_counter() - start) < seconds:
        pipe = c.pipeline(transaction=False)
        while n < int(now * rate):
            ev = {"event_id": f"live-{n}", "type": "click", "ts": ts + n / rate,
                  "customer_id": f"c{rng.randrange(customers):06d}",
                  "action": rng.choice(["page_view", "product_view", "search"]),
                  "category": rng.choice(["electronics", "fashion", "home", "travel"])}
            keys, args = store.ingest_args(ev, settings.partitions, 3600, 10_000_000)
            pipe.evalsha(sha, len(keys), *keys, *args)
            n += 1
        pipe.execute()
        time.sleep(0.01)
    cpu = cpu_seconds(procs) - cpu0
    total, done = counts(c, settings.partitions)
    return {"rate": rate, "events": n, "customers": customers,
            "cpu_cores": round(cpu / seconds, 3), "cpu_us_per_event": round(1e6 * cpu / n, 1),
            "behind_at_end": total - done}


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU of the flow processes: far steadier than wall time on a shared
    machine (other load slows the clock, not the work)."""
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)


def memory(url: str, customers: int) -> dict[str, Any]:
    c = redis.Redis.from_url(url)
    ids = random.Random(1).sample(range(customers), min(3000, customers))
    per = []
    for i in ids:
        cid = f"c{i:06d}"
        keys = [store.customer(cid), store.contact(cid), store.consent(cid), store.anon(f"anon{i:06d}")]
        per.append(sum(c.memory_usage(k) or 0 for k in keys))
    shared = (c.memory_usage(store.CUSTOMERS) or 0) + (c.memory_usage(store.WATCH) or 0)
    return {"bytes_per_customer": round(sum(per) / len(per) + shared / customers, 1),
            "profile_doc_bytes": round(sum(c.memory_usage(store.customer(f"c{i:06d}")) or 0
                                           for i in ids) / len(ids), 1)}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench flow")
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=400)
    ap.add_argument("--live-rate", type=int, default=2000)
    ap.add_argument("--live-seconds", type=float, default=15.0)
    args = ap.parse_args(argv)
    live = {"customers": args.customers, "rate": args.live_rate, "seconds": args.live_seconds,
            "ts": START + (args.rounds + 1) * 60.0}  # after the history (bench.data's pace)
    tmp = Path(tempfile.mkdtemp(prefix="nb-flow-"))
    events = tmp / "events.jsonl"
    n = write_events(events, args.customers, args.rounds)
    out: dict[str, Any] = {"events": n, "customers": args.customers, "cores": os.cpu_count(),
                           "yardstick_before": machine.measure()}
    print(machine.describe(out["yardstick_before"]), flush=True)
    with RedisServer(tmp / "redis") as server:
        s = Settings(redis_url=server.url, data_dir=tmp / "d", partitions=4, model_secret="x",
                     api_keys={}, flow_recovery=False)
        for name, layout, recovery in (("1 worker", [[]], False),
                                       ("2 processes x 1 worker", None, False),
                                       ("1 worker, recovery on (as nextbest up)", [[]], True)):
            redis.Redis.from_url(server.url).flushall()
            s.flow_recovery = recovery
            shutil.rmtree(s.data_dir / "recovery", ignore_errors=True)
            feed(s, events, Console(quiet=True))
            if layout is None:
                addrs = ";".join(f"127.0.0.1:{p}" for p in listen_ports(2))
                layout = [["-i", "0", "-a", addrs], ["-i", "1", "-a", addrs]]
            out[name] = timed_run(s, layout, live if name == "1 worker" else None)
            print(f"{name}: {out[name]['events_per_s']:,} events/s "
                  f"({out[name]['events']:,} events in {out[name]['seconds']} s, "
                  f"{out[name]['cpu_s_per_1000_events']:.3f} CPU s per 1,000 events)", flush=True)
            if "live" in out[name]:
                lv = out[name]["live"]
                print(f"1 worker, live: {lv['rate']:,} clicks/s over {lv['customers']:,} customers:"
                      f" {lv['cpu_cores']:.2f} of a core, {lv['cpu_us_per_event']:.0f} us of CPU"
                      f" per event, {lv['behind_at_end']} events behind at the end", flush=True)
        out["memory"] = memory(server.url, args.customers)
        print(f"Redis per customer: {out['memory']['bytes_per_customer']:.0f} bytes "
              f"(profile document {out['memory']['profile_doc_bytes']:.0f})", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)  # the event file and Redis data: ~100 MB a run
    out["yardstick_after"] = machine.measure()
    print(machine.describe(out["yardstick_after"]) + " (after)", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flow.json").write_text(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
