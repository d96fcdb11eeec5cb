"""Event files for benchmarks, from the simulated population."""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from nextbest.simulator import Population

START = 1_767_225_600.0


def write_events(path: Path, customers: int, rounds: int, seed: int = 1,
                 step: float = 60.0) -> int:
    """Onboard every customer, then `rounds` bursts of activity (200 customers each, `step`
    event seconds apart); returns the event count."""
    rng = random.Random(seed)
    pop = Population(customers, rng, START)
    n = 0
    with path.open("wb") as fh:
        for c in pop.customers:
            for ev in pop.onboard(c, START):
                fh.write(orjson.dumps(ev) + b"\n")
                n += 1
        ts = START
        for _ in range(rounds):
            ts += step
            for c in rng.sample(pop.customers, min(len(pop.customers), 200)):
                for ev in pop.activity(c, ts):
                    fh.write(orjson.dumps(ev) + b"\n")
                    n += 1
    return n
