"""Flow throughput with every Redis write, and Redis memory per customer.

    ./nb bench flow [--customers 20000] [--rounds 400]

Feeds a simulated event file into the partition streams, then runs the real flow (as
`nextbest up` does) with 1 worker, as 2 processes x 1 worker (both without recovery
snapshots), and as 1 worker with recovery on (the default of `nextbest up`: state snapshots
every epoch), and times each from the first
processed event to the last (start-up excluded). Prints events/s and the flow processes' CPU
seconds per 1,000 events (user + system, the steadier figure on a shared machine) for each,
and Redis bytes per customer (MEMORY USAGE of every per-customer key, sampled). Writes bench/results/flow.json.
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

from bench.data import write_events
from config import Settings
from engine import store
from nextbest.redis_server import RedisServer, free_port
from nextbest.replay import feed

RESULTS = Path(__file__).parent / "results"


def counts(c: redis.Redis, partitions: int) -> tuple[int, int]:
    ins = sum(int(c.get(store.ingested(p)) or 0) for p in range(partitions))
    done = sum(int(c.get(store.processed(p)) or 0) for p in range(partitions))
    return ins, done


def timed_run(settings: Settings, layout: list[list[str]]) -> dict[str, Any]:
    """The flow as `layout` (flowrun arguments per process) over what is in the streams; with
    `settings.flow_recovery`, snapshots are taken as in production."""
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
    finally:
        for p in procs:
            p.kill()
            p.wait()
    n = total - first
    return {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
            "cpu_s": round(cpu, 2), "cpu_s_per_1000_events": round(1000 * cpu / n, 4)}


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
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nb-flow-"))
    events = tmp / "events.jsonl"
    n = write_events(events, args.customers, args.rounds)
    out: dict[str, Any] = {"events": n, "customers": args.customers, "cores": os.cpu_count()}
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
                addrs = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
                layout = [["-i", "0", "-a", addrs], ["-i", "1", "-a", addrs]]
            out[name] = timed_run(s, layout)
            print(f"{name}: {out[name]['events_per_s']:,} events/s "
                  f"({out[name]['events']:,} events in {out[name]['seconds']} s, "
                  f"{out[name]['cpu_s_per_1000_events']:.3f} CPU s per 1,000 events)", flush=True)
        out["memory"] = memory(server.url, args.customers)
        print(f"Redis per customer: {out['memory']['bytes_per_customer']:.0f} bytes "
              f"(profile document {out['memory']['profile_doc_bytes']:.0f})", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)  # the event file and Redis data: ~100 MB a run
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flow.json").write_text(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
