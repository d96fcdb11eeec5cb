"""A customer's state as plain data, for bytewax snapshots: `dump` and `load`, and the
upgrades that read snapshots written by earlier versions.

The flow snapshots every customer it touched in each epoch; plain data under one function
(`engine.features._restore`, the name older snapshots refer to) pickles in a third of the time
nested objects (a reduce call each) took.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import orjson

from engine import seen as seen_ids
from engine.cart import Cart
from engine.decay import Decayed, DecayedMean
from engine.features import CustomerState
from engine.sessions import Sessions
from engine.windows import SCALE, Windowed

# What `dump` keeps as is, in this order. Only ever append: an older snapshot holds a prefix.
_PLAIN = ("customer_id", "lateness", "first_ts", "last_ts", "seen", "counts", "totals", "last",
          "bought", "call_reasons", "calls_unresolved", "calls_escalated", "last_call",
          "purchase_days", "attributes", "stamps", "owner", "consent", "anonymous_ids", "recent",
          "recent_keys", "purchase_days_dropped", "first_purchase_day")
_plain = attrgetter(*_PLAIN)


def dump(st: CustomerState) -> tuple[Any, ...]:
    """The state as plain data (dicts, lists, tuples, numbers, strings); `load` inverts it."""
    return (_plain(st), {m: w.dump() for m, w in st.windows.items()},
            st.sessions.dump(), st.cart.dump(),
            {cat: d.dump() for cat, d in st.interest.items()},
            st.sentiment_short.dump(), st.sentiment_long.dump())


def load(data: tuple[Any, ...]) -> CustomerState:
    plain, windows, sessions, cart, interest, short, long = data
    st = CustomerState(plain[0])
    st.__dict__.update(zip(_PLAIN, plain))
    upgrade(st)
    st.windows = {m: Windowed.load(w) for m, w in windows.items()}
    st.sessions, st.cart = Sessions.load(sessions), Cart.load(cart)
    st.interest = {cat: Decayed.load(d) for cat, d in interest.items()}
    st.sentiment_short, st.sentiment_long = DecayedMean.load(short), DecayedMean.load(long)
    return st


def legacy(st: CustomerState, state: dict[str, Any]) -> None:
    """A snapshot from before plain data: the object's own `__dict__`."""
    st.__dict__.update(CustomerState(state["customer_id"]).__dict__)
    if "purchase_total" in state:  # from before lifetime totals per measure
        st.counts["purchase"] = state.pop("purchase_count", 0)
        st.totals["purchase"] = round(state.pop("purchase_total") * SCALE)
        st.totals["refund"] = round(state.pop("refund_total", 0.0) * SCALE)
    st.__dict__.update(state)
    upgrade(st)


def upgrade(st: CustomerState) -> None:
    """Remembered ids and interactions as snapshots from before digests and JSON held them."""
    if isinstance(st.seen, dict):
        st.seen = seen_ids.from_dict(st.seen)
    st.recent = [orjson.dumps(r).decode() if isinstance(r, dict) else r for r in st.recent]
