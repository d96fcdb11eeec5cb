"""The feature reference (docs/features.md), generated from `engine.features.FEATURES`.

`python -m engine.featuredoc > docs/features.md`; a test keeps the file current.
"""

from __future__ import annotations

from engine.features import FEATURES
from engine.windows import WINDOWS

HEADER = """# Customer features

Generated from `engine/features.py` (`python -m engine.featuredoc > docs/features.md`).
All features are computed in **event time** by the flow and stored per customer; rules see them
as `features.<name>`, models as inputs. Windows are bucketed ({windows}): minute buckets for 1 h,
hour buckets for 1 d, day buckets beyond, so live, replayed and shuffled arrival give identical
values. Recency (`days_since_*`) is brought forward to the engine clock when read.

Late events: any arrival order gives the same sums (bucket sums and decayed sums are
order-independent); an event older than the 90-day buckets still counts in lifetime totals.
The lateness bound that matters for *alerts and reward windows* is `NEXTBEST_LATENESS_S`
(default 3600 s): later events are applied but do not re-open decisions already counted.

Scores beside the features (`scores.*`): `churn_risk` and `outcomes.<name>` (River models),
`p_alive`, `expected_purchases`, `clv` (BG/NBD + Gamma-Gamma over `horizon_days`), `rfm`
(quintiles against the live population), `segment`, `tier`, `offers.<id>` (propensities).

| feature | meaning |
|---|---|
"""


def render() -> str:
    rows = [f"| `{name}` | {meaning} |" for name, meaning in FEATURES.items()]
    return HEADER.format(windows=", ".join(WINDOWS)) + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
