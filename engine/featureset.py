"""The feature set: every feature's name and meaning, and the form a profile stores it in.

`FEATURES` is the one definition of what the features mean; docs/features.md is generated from
it (`python -m engine.featuredoc`). A stored profile keeps only the features away from their
default (0, or -1 for "never") and none of the derived ones; `expand` gives the full set back.
"""

from __future__ import annotations

from engine.types import Features
from engine.windows import WINDOWS

DAY = 86400.0
MEASURES = ("click", "call", "purchase", "refund", "payment")
AMOUNTS = ("purchase", "refund", "payment")
CLICK_KINDS = ("page_view", "product_view", "search", "add_to_cart", "checkout", "offer_view")
RECENT_KINDS = ("event", "click", *CLICK_KINDS, "call", "complaint", "cancel_request", "purchase",
                "refund", "payment", "profile")
_W = tuple(WINDOWS)

FEATURES: dict[str, str] = {
    **{f"{m}_count_{w}": f"number of {m} events in the last {w}" for m in MEASURES for w in _W},
    **{f"{m}_amount_{w}": f"sum of {m} amounts in the last {w}" for m in AMOUNTS for w in _W},
    **{f"days_since_{k}": f"days since the last {k} (event time; -1 if never)"
       for k in RECENT_KINDS},
    "days_since_complaint": "days since the last call with reason complaint or cancel_request "
                            "(event time; -1 if never)",
    "days_since_cancel_request": "days since the last call with reason cancel_request (event "
                                 "time; -1 if never)",
    "sessions_1d": "web/app sessions started in the last 1 d (a click's session_id, else runs of "
                   "clicks with under 30 min between them)",
    "sessions_7d": "sessions started in the last 7 d",
    "sessions_30d": "sessions started in the last 30 d",
    "session_length_avg_30d": "mean session length in seconds (first to last click), 30 d",
    "session_clicks_avg_30d": "mean clicks per session, 30 d",
    "session_length_last": "length in seconds of the latest session",
    "purchases": "lifetime purchases",
    "frequency": "repeat purchase days: distinct purchase days after the first (RFM frequency)",
    "total_spend": "lifetime purchase amount",
    "monetary": "average purchase amount (RFM monetary; recency is days_since_purchase)",
    "aov": "average order value (= monetary)",
    "refunds": "lifetime refunds",
    "total_refunded": "lifetime refunded amount",
    "refund_rate": "refunded amount / purchased amount",
    "payments": "lifetime payments",
    "total_paid": "lifetime payment amount",
    "categories_bought": "distinct categories bought",
    "tenure_days": "days since the first event",
    "calls_unresolved": "calls ending unresolved",
    "calls_escalated": "calls escalated",
    "call_open": "1 if the latest call ended unresolved, escalated or with a callback due",
    "sentiment": "decayed mean call sentiment (7-day half-life)",
    "sentiment_trend": "short (7 d) minus long (90 d) decayed sentiment",
    "carted_not_bought": "products added to cart in the last 30 d and not removed or bought since",
    "cart_value": "sum of the prices (the add_to_cart click's `price`) of those products",
    "cart_abandoned": "1 if products are in the cart and the last click is over 30 min old",
    "interest_<category>": "click interest in the category, 7-day half-life "
                           "(product view 1, search 1, add to cart 3, removal -1, others 0.5)",
    "interest_share_<category>": "the category's share of all current click interest (0..1)",
    "calls_reason_<reason>": "calls for that reason",
    "bought_<category>": "items bought in the category",
}
DERIVED = ("aov", "interest_share_")  # not stored: computed from stored features on read
DEFAULTS: dict[str, float] = {
    name: (-1.0 if name.startswith("days_since_") else 0.0)
    for name in FEATURES if "<" not in name
}


def put(out: Features, names: tuple[str, ...], values: tuple[float, ...]) -> None:
    """Set the values that are not zero (zero is the default of every feature set this way).

    >>> out = {}; put(out, ("a", "b"), (0, 2.5)); out
    {'b': 2.5}
    """
    for name, value in zip(names, values):
        if value:
            out[name] = value


def compact(features: Features) -> Features:
    """What is stored: features at their default (0, or -1 for "never") and derived features
    are left out.

    >>> compact({"purchases": 0, "total_spend": 5.0, "aov": 5.0, "days_since_call": -1.0})
    {'total_spend': 5.0}
    """
    return {k: v for k, v in features.items()
            if v != DEFAULTS.get(k, 0.0) and not k.startswith(DERIVED)}


def expand(stored: Features) -> Features:
    """The full feature dictionary from its stored form (defaults and derived features back).

    >>> f = expand({"monetary": 5.0, "interest_home": 3.0, "interest_travel": 1.0})
    >>> f["days_since_call"], f["purchases"], f["aov"], f["interest_share_home"]
    (-1.0, 0.0, 5.0, 0.75)
    """
    out = {**DEFAULTS, **stored}
    out["aov"] = out["monetary"]
    interest = {k: v for k, v in stored.items()
                if k.startswith("interest_") and not k.startswith("interest_share_")}
    total = sum(v for v in interest.values() if v > 0)
    for key, value in interest.items():
        out["interest_share_" + key[9:]] = round(value / total, 4) if total and value > 0 else 0.0
    return out
