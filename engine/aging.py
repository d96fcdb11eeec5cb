"""A stored profile's features brought forward to a later engine clock, without the events.

The flow writes a customer's features as of their latest event (the document's `t`); the API
reads them at the engine clock, `gap` later. What moves on exactly without the events:
- recency (`days_since_*`) and `tenure_days` grow by the gap;
- a window the gap has passed entirely (its length or more) is empty: counts, amounts, sessions;
- interest decays by its half-life;
- the cart is empty `cart.HORIZON` after its last add, and counts as abandoned once the last
  click is over 30 min old.
A window the gap has passed in part still counts the events that have left it since, until the
customer's next event rewrites the profile: the profile does not hold the window's buckets.

>>> f = age({"click_count_1h": 3.0, "click_count_30d": 9.0, "days_since_click": 0.5,
...          "tenure_days": 10.0, "interest_home": 4.0}, 7 * 86400.0)
>>> f["click_count_1h"], f["click_count_30d"], f["days_since_click"], f["tenure_days"]
(0.0, 9.0, 7.5, 17.0)
>>> f["interest_home"], f["interest_share_home"]
(2.0, 1.0)
"""

from __future__ import annotations

from math import exp

from engine.cart import HORIZON
from engine.features import INTEREST_RATE
from engine.featureset import DAY, FEATURES, expand
from engine.sessions import GAP
from engine.types import Features
from engine.windows import WINDOWS

# feature -> its window's length (s): `click_count_7d`, `sessions_30d`, `session_length_avg_30d`,
# and the cart's products, each held for `HORIZON` after its add
WINDOWED = {name: float(WINDOWS[name.rpartition("_")[2]][0]) for name in FEATURES
            if name.rpartition("_")[2] in WINDOWS}
WINDOWED |= {"carted_not_bought": HORIZON, "cart_value": HORIZON, "cart_abandoned": HORIZON}


def age(stored: Features, gap: float) -> Features:
    """The full features of a stored profile (`featureset.compact`), `gap` seconds on."""
    if gap <= 0:
        return expand(stored)
    days, decay = gap / DAY, exp(INTEREST_RATE * gap)
    out: Features = {}
    for name, value in stored.items():
        if name.startswith("days_since_") or name == "tenure_days":
            out[name] = round(value + days, 4) if value >= 0 else value
        elif name in WINDOWED:
            if gap < WINDOWED[name]:
                out[name] = value
        elif name.startswith("interest_"):
            if moved := round(value * decay, 4):
                out[name] = moved
        else:
            out[name] = value
    since_click = out.get("days_since_click", -1.0)
    if out.get("carted_not_bought") and since_click * DAY > GAP:
        out["cart_abandoned"] = 1
    elif not out.get("carted_not_bought"):
        out.pop("cart_abandoned", None)
    return expand(out)
