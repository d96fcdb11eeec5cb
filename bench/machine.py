"""How fast this machine does the engine's own work right now, printed beside the benchmarks.

Runs of the same code on this shared 2-core machine differ by 15% or more from one hour to the
next (the API needed 0.33-0.35 of a core for 250 decisions/s in some runs and 0.42-0.54 in
others). So `bench flow` and `bench api` also print this yardstick, before and after their load:
the CPU one customer batch of the flow's own work takes (a click folded in, features, the alert
rules, the profile document, encoded and compressed) on a fixed customer, in a fresh process
with nothing else of the engine running; and the CPU of a request/response over TCP on loopback
(the kernel's part of every API request and Redis command). Runs whose yardsticks differ are
not comparable. Equal yardsticks are no guarantee: they read the machine idle, and a run can
still slow down under its own load (docs/performance.md, session 9).

    python -m bench.machine
"""

from __future__ import annotations

import copy
import gc
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

from bench.data import START
from engine import store
from engine.customer import Context, Customer, process_batch
from engine.opportunity import AlertRules
from flows.main import bundle
from flows.sink import _flat

RULES = Path(__file__).resolve().parents[1] / "rules" / "alerts.yaml"
CATEGORIES = ("electronics", "fashion", "home", "travel")
ACTIONS = ("page_view", "product_view", "search", "add_to_cart")


@cache
def _customer() -> tuple[Customer, Context]:
    """A customer with 60 days of clicks, purchases and calls, the same every time."""
    rules = AlertRules.load(RULES)
    ctx = Context(alert_rules=lambda: rules)
    c: Customer | None = None
    events: list[dict[str, Any]] = [
        {"event_id": "p", "type": "profile", "ts": START, "customer_id": "m1",
         "attributes": {"age": 41, "owner": "rep-1"}}]
    for day in range(60):
        ts = START + day * 86400.0
        events += [{"event_id": f"k{day}-{i}", "type": "click", "ts": ts + 60 * i,
                    "customer_id": "m1", "action": ACTIONS[(day + i) % 4],
                    "category": CATEGORIES[(day * 3 + i) % 4]} for i in range(3)]
        if day % 9 == 0:
            events.append({"event_id": f"t{day}", "type": "transaction", "ts": ts + 600,
                           "customer_id": "m1", "amount": 20.0 + day,
                           "items": [{"category": CATEGORIES[day % 4], "quantity": 1}]})
        if day % 20 == 0:
            events.append({"event_id": f"c{day}", "type": "call", "ts": ts + 900,
                           "customer_id": "m1", "reason": "billing", "sentiment": 0.2})
    for ev in events:
        c, _ = process_batch(c, [ev], ctx)
    assert c is not None
    c.state.release()
    return c, ctx


def _round(clicks: int) -> tuple[float, str]:
    """CPU seconds for `clicks` batches of one click each, and a digest of the last document."""
    base, ctx = _customer()
    c = copy.deepcopy(base)
    last = b""
    ts = START + 60 * 86400.0
    gc.collect()
    start = time.process_time()
    for i in range(clicks):
        ev = {"event_id": f"y{i}", "type": "click", "ts": ts + 7.0 * i, "customer_id": "m1",
              "action": ACTIONS[i % 4], "category": CATEGORIES[i % 4]}
        c, out = process_batch(c, [ev], ctx)
        for w in _flat(bundle(out, [ev])):  # as the sink opens the step's bundle
            if w[0] == "document":
                last = store.compress(w[2])
    used = time.process_time() - start
    return used, hashlib.sha256(last).hexdigest()[:16]


def _loopback(trips: int) -> float:
    """CPU seconds for `trips` request/response exchanges of 200 bytes over TCP on loopback,
    both ends in this process: the kernel's part of every API request and Redis command."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
        with a, b:
            for s in (a, b):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ask, answer = b"q" * 200, b"r" * 200
            start = time.process_time()
            for _ in range(trips):
                a.sendall(ask)
                b.recv(4096)
                b.sendall(answer)
                a.recv(4096)
            return time.process_time() - start


def yardstick(rounds: int = 9, clicks: int = 500, trips: int = 2000) -> dict[str, Any]:
    """µs of CPU per customer batch: the median of `rounds` rounds, their spread, and a digest
    of the work's result (the same on every call: the same work is timed); and µs of CPU per
    loopback round trip (median of as many rounds)."""
    _round(20)  # warm: imports, caches
    times, digests, trip_us = [], set(), []
    for _ in range(rounds):
        used, digest = _round(clicks)
        times.append(1e6 * used / clicks)
        digests.add(digest)
        trip_us.append(1e6 * _loopback(trips) / trips)
    assert len(digests) == 1, "the yardstick's work is not deterministic"
    return {"us_per_batch": round(statistics.median(times), 1),
            "spread": [round(min(times), 1), round(max(times), 1)], "digest": digests.pop(),
            "us_per_loopback_trip": round(statistics.median(trip_us), 1)}


def measure() -> dict[str, Any]:
    """`yardstick()` in a fresh interpreter: in a benchmark's own process it would also time
    that process's heap (a big one makes every garbage collection slower)."""
    out = subprocess.run([sys.executable, "-m", "bench.machine", "--json"], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return dict(json.loads(out.stdout))


def describe(y: dict[str, Any]) -> str:
    return (f"machine yardstick: {y['us_per_batch']:.1f} us of CPU per customer batch "
            f"(spread {y['spread'][0]:.1f}-{y['spread'][1]:.1f}), "
            f"{y['us_per_loopback_trip']:.1f} us per loopback round trip (`python -m bench.machine`)")


if __name__ == "__main__":
    y = yardstick()
    print(json.dumps(y) if "--json" in sys.argv else describe(y))
