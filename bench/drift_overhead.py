"""`python -m bench.drift_overhead`: what the drift monitors add per example.

learn_one with and without the input-drift monitor on realistic 70-feature vectors (a
customer's features and attributes, jittered), the monitor alone, and the per-batch source
tally of the flow. CPU time (time.process_time), median of 5 runs of 3,000 examples.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from engine.features import CustomerState
from engine.inputdrift import InputDrift
from engine.models import OnlineModel
from engine.sourcedrift import tally
from engine.vector import vectorize


class _Off:
    def update(self, x: Any) -> list[Any]:
        return []


def main() -> None:
    st = CustomerState("c1")
    st.update({"event_id": "e1", "type": "transaction", "ts": 86400.0, "amount": 30.0})
    base = vectorize(st.features(), {"plan": "gold", "age": 41}, None)
    rng = random.Random(1)
    xs = [{k: v + rng.random() for k, v in base.items()} for _ in range(3000)]
    ys = [rng.random() < 0.3 for _ in xs]

    def learn(monitor: bool) -> float:
        m = OnlineModel("offer:a")
        if not monitor:
            m.inputs = _Off()  # type: ignore[assignment]
        t = time.process_time()
        for x, y in zip(xs, ys):
            m.learn_one(x, y)
        return (time.process_time() - t) / len(xs) * 1e6

    def alone() -> float:
        d = InputDrift()
        t = time.process_time()
        for x in xs:
            d.update(x)
        return (time.process_time() - t) / len(xs) * 1e6

    evs = [{"event_id": "e", "type": "click", "ts": 1000.0, "channel": "web"}]

    def tallies() -> float:
        t = time.process_time()
        for _ in range(20000):
            tally(evs, 999.0, 3600.0)
        return (time.process_time() - t) / 20000 * 1e6

    print("features per vector:", len(base))
    for name, f in (("learn_one without the input monitor", lambda: learn(False)),
                    ("learn_one with the input monitor", lambda: learn(True)),
                    ("InputDrift.update alone", alone),
                    ("sourcedrift.tally, one-event customer batch", tallies)):
        runs = [f() for _ in range(5)]
        print(f"{name}: median {statistics.median(runs):.2f} us "
              f"(runs {[round(r, 2) for r in runs]})")


if __name__ == "__main__":
    main()
