"""The feature reference (docs/features.md), generated from `engine.featureset.FEATURES`.

`python -m engine.featuredoc > docs/features.md`; a test keeps the file current.
"""

from __future__ import annotations

from engine.featureset import FEATURES
from engine.windows import WINDOWS

HEADER = """# Customer features

Generated from `engine/featureset.py` (`python -m engine.featuredoc > docs/features.md`); a test
keeps this file current. The flow computes every feature in **event time**, one customer at a
time, and stores them with the customer's profile; rules see them as `features.<name>`, the
models as inputs, the API under `features` of `GET /v1/customers/{{id}}`.

**Windows** ({windows}) are sums over fixed buckets (minutes for 1 h, hours for 1 d, days
beyond), with amounts held as exact integers (1/10000 currency units), read incrementally.
**Recency** (`days_since_*`) is measured from the customer's latest event.

**Read later.** A profile is written as of the customer's latest event and read at the engine
clock (`engine/aging.py`): recency and `tenure_days` move on by the time since, interest decays,
and a window (or the cart's 30 days) that time has passed entirely reads empty. A window it has
passed only in part still counts the events that have left it, until the customer's next event
(the profile does not hold the windows' buckets). **Sessions** are a click's `session_id` when it has one, else
runs of clicks less than 30 min apart (merged when a late click bridges two). The **cart** and
**profile attributes** are last-writer-wins by event time (ties: the larger event id); a null
attribute removes it. Features at their default (0, or -1 for "never") and derived ones
(`aov`, `interest_share_*`) are not stored but filled in on read.

**Arrival order and lateness.** Every feature is built from order-independent state (sums,
maxima, merged sessions, last-writer-wins), so live, replayed, and shuffled arrival give
identical features. The promise is stated for events up to `NEXTBEST_LATENESS_S` late (default
3600 s behind the customer's latest event; tested), and it holds further: windows and recency
for any lateness, sessions and the cart for 30 days plus that bound. An event later than that
counts in the lifetime totals (`purchases`, `total_spend`, `bought_*`, `calls_reason_*`, ...)
but not in windows, sessions or the cart, as if it had arrived on time and aged out since.
What lateness does not undo: alerts raised, model examples learned and profiles written before
the late event arrived stay as they were (later writes include it), and feedback for a
decision whose reward window had already been closed as `ignored` is recorded, not learned.

**Duplicates** (same `event_id`) change nothing: ingest drops ids seen in the last
`NEXTBEST_DEDUP_TTL_S` (30 days), and each customer remembers its latest 512 event ids, which
also covers redelivery after a flow restart. **Anonymous clicks** are kept under the anonymous
id (up to 500) and merged into the customer on `identify`, each exactly once.

Scores beside the features (`scores.*`): `churn_risk` and `outcomes.<name>` (River models),
`p_alive`, `expected_purchases`, `clv` (BG/NBD + Gamma-Gamma over `horizon_days`), `rfm`
(`r`, `f`, `m` quintiles 1-5 against the live population and `score`, e.g. "545"), `segment`
(e.g. `champions`, `at_risk`, `prospect` before any purchase), `tier` (`platinum`, `gold`,
`silver`, `bronze`; `none` before any purchase), `offers.<id>` (propensities).

| feature | meaning |
|---|---|
"""


def render() -> str:
    rows = [f"| `{name}` | {meaning} |" for name, meaning in FEATURES.items()]
    return HEADER.format(windows=", ".join(WINDOWS)) + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
