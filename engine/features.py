"""A customer's live state, updated event by event in event time, and the features it yields.

`CustomerState.update(event)` folds one validated event in; `features(now)` reads the feature
dictionary as of `now` (event time). What each feature means is in `engine.featureset.FEATURES`
(and docs/features.md, generated from it).

Every piece of state is order-independent: bucket sums (exact integers) and decayed sums
commute, recency is a maximum, sessions merge, the cart and profile attributes are
last-writer-wins by event time (ties broken by event id). So live, replayed and shuffled
arrival give the same features. State older than anything a feature reads, plus the lateness
bound, is forgotten; an event arriving later than that still counts in the lifetime totals, and
in-order processing would have forgotten the rest by now too.

Reading is cheap because it is incremental: window sums are kept aligned, session and cart
summaries are remembered while they cannot change, and `features()` is cached until the next
update, so the flow pays for one read per customer per batch.

>>> st = CustomerState("c1")
>>> st.update({"event_id": "e1", "type": "transaction", "ts": 86400.0, "amount": 30.0})
>>> st.update({"event_id": "e2", "type": "click", "ts": 90000.0, "action": "search"})
>>> f = st.features()
>>> f["purchase_amount_1d"], f["days_since_purchase"], f["sessions_1d"], f["aov"]
(30.0, 0.0417, 1, 30.0)
"""

from __future__ import annotations

from bisect import bisect
from math import exp, log
from typing import Any

import orjson

from engine import consent, purchases
from engine import seen as seen_ids
from engine.cart import Cart
from engine.decay import Decayed, DecayedMean
from engine.featureset import (
    AMOUNTS,
    CLICK_KINDS,
    DAY,
    DEFAULTS,
    FEATURES,
    MEASURES,
    RECENT_KINDS,
    compact,
    expand,
    put,
)
from engine.sessions import GAP, Sessions
from engine.types import Event, Features
from engine.windows import SCALE, WINDOWS, Windowed

__all__ = ["DAY", "FEATURES", "CustomerState", "compact", "expand"]

LATENESS = 3600.0  # default of settings.lateness_s
INTEREST_HALF_LIFE = 7 * DAY
SENTIMENT_SHORT, SENTIMENT_LONG = 7 * DAY, 90 * DAY
MAX_RECENT = 10
_REASON_KINDS = {"complaint": ("complaint",), "cancel_request": ("complaint", "cancel_request")}
OPEN_OUTCOMES = frozenset({"unresolved", "escalated", "callback"})
_INTEREST_WEIGHT = {"product_view": 1.0, "page_view": 0.5, "search": 1.0, "add_to_cart": 3.0,
                    "checkout": 2.0, "offer_view": 0.5, "remove_from_cart": -1.0}
INTEREST_RATE = -log(2) / INTEREST_HALF_LIFE  # per second (`engine.aging` decays by it too)
_WKEYS = {m: [(f"{m}_count_{w}", f"{m}_amount_{w}" if m in AMOUNTS else None) for w in WINDOWS]
          for m in MEASURES}
_RECENT_FIELDS = ("type", "ts", "action", "category", "product_id", "reason", "outcome", "kind",
                  "amount", "currency", "sent_amount", "sent_currency", "channel", "sentiment")
_SINCE = {kind: "days_since_" + kind for kind in RECENT_KINDS}
_SESSION_KEYS = ("sessions_1d", "sessions_7d", "sessions_30d", "session_length_avg_30d",
                 "session_clicks_avg_30d", "session_length_last")


class CustomerState:
    """Everything the flow keeps about one customer. Picklable, for bytewax snapshots."""

    def __init__(self, customer_id: str, lateness: float = LATENESS) -> None:
        self.customer_id = customer_id
        self.lateness = lateness
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.seen = bytearray()  # digests of the latest event ids (engine.seen)
        self.windows: dict[str, Windowed] = {}  # measure -> its windows, once it has an event
        self.counts: dict[str, int] = dict.fromkeys(MEASURES, 0)  # lifetime, per measure
        self.totals: dict[str, int] = dict.fromkeys(AMOUNTS, 0)  # lifetime, 1/SCALE units: exact
        self.last: dict[str, float] = {}  # kind -> latest event time
        self.sessions = Sessions()
        self.cart = Cart()
        self.interest: dict[str, Decayed] = {}
        self.bought: dict[str, float] = {}
        self.call_reasons: dict[str, int] = {}
        self.calls_unresolved = 0
        self.calls_escalated = 0
        self.last_call: tuple[float, str, str] = (-1.0, "", "")  # ts, event id, outcome
        self.sentiment_short = DecayedMean(SENTIMENT_SHORT)
        self.sentiment_long = DecayedMean(SENTIMENT_LONG)
        self.purchase_days: set[int] = set()  # the latest purchases.MAX_DAYS distinct days
        self.purchase_days_dropped = 0  # distinct purchase days older than those kept
        self.first_purchase_day: int | None = None  # once some are dropped; else min(days)
        self.attributes: dict[str, Any] = {}
        self.stamps: dict[str, tuple[float, str]] = {}  # attribute/consent/owner -> (ts, id)
        self.owner: str | None = None
        self.consent: dict[str, bool] = {}
        self.anonymous_ids: set[str] = set()
        self.recent: list[str] = []  # the latest interactions as JSON, oldest first
        self.recent_keys: list[tuple[float, str]] = []
        self._cache: tuple[float, Features, Features] | None = None
        self._commerce: Features | None = None

    @property
    def purchase_total(self) -> float:
        return self.totals["purchase"] / SCALE

    @property
    def purchase_count(self) -> int:
        return self.counts["purchase"]

    def purchase_history(self) -> tuple[int, int, int] | None:
        """(distinct purchase days, first, last) over the customer's whole history."""
        return purchases.history(self.purchase_days, self.purchase_days_dropped,
                                 self.first_purchase_day)

    def first_time(self, event_id: str) -> bool:
        """Remember `event_id`: False for a duplicate (`engine.seen`, one digest for both)."""
        return seen_ids.first_time(self.seen, event_id)

    def interactions(self) -> list[orjson.Fragment]:
        """The latest interactions, oldest first, ready for `orjson.dumps`."""
        return [orjson.Fragment(r) for r in self.recent]

    def release(self) -> None:
        """Drop the cached features: the flow calls this once a batch is written (~10 KB a
        customer that would otherwise stay in memory until the customer's next event)."""
        self._cache = None

    def update(self, event: Event) -> None:
        """Fold one validated event into the state (duplicates are the caller's concern)."""
        self._cache = None
        ts = float(event["ts"])
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        self._touch("event", ts)
        if anon := event.get("anonymous_id"):
            self.anonymous_ids.add(anon)
        kind = event["type"]
        handler = getattr(self, "_on_" + kind, None)
        if handler:
            handler(event, ts)
        if kind in ("click", "call", "transaction"):
            self._remember_recent(event, ts)

    def _touch(self, kind: str, ts: float) -> None:
        if ts > self.last.get(kind, -1.0):
            self.last[kind] = ts

    def _newer(self, key: str, ts: float, event_id: str) -> bool:
        """Last writer wins by event time (then event id): is this event the latest for `key`?"""
        stamp = (ts, event_id)
        if stamp < self.stamps.get(key, (-1.0, "")):
            return False
        self.stamps[key] = stamp
        return True

    def _remember_recent(self, event: Event, ts: float) -> None:
        key = (ts, str(event.get("event_id", "")))
        i = bisect(self.recent_keys, key)
        self.recent_keys.insert(i, key)
        # as JSON: a third of a dict's memory, and written into the profile as it is (a str:
        # orjson's bytes come from a 1 KiB buffer shrunk in place, which fragments the heap)
        self.recent.insert(i, orjson.dumps({k: event[k] for k in _RECENT_FIELDS if k in event}).decode())
        if len(self.recent) > MAX_RECENT:
            del self.recent[0], self.recent_keys[0]

    def _count(self, measure: str, ts: float, amount: float = 0.0) -> None:
        self.counts[measure] += 1
        windowed = self.windows.get(measure)
        if windowed is None:
            windowed = self.windows[measure] = Windowed()
        windowed.add(ts, amount)

    def _on_click(self, event: Event, ts: float) -> None:
        self._count("click", ts)
        self._touch("click", ts)
        self.sessions.add(ts, event.get("session_id"))
        self.sessions.prune(self.last_ts, self.lateness)
        action = event.get("action", "page_view")
        if action in CLICK_KINDS:
            self._touch(action, ts)
        if cat := event.get("category"):
            interest = self.interest.get(cat)
            if interest is None:
                interest = self.interest[cat] = Decayed(INTEREST_HALF_LIFE)
            interest.add(_INTEREST_WEIGHT.get(action, 0.5), ts)
        product = event.get("product_id")
        if product and action == "add_to_cart":
            self.cart.add(product, ts, float(event.get("price") or 0.0))
            self.cart.prune(self.last_ts, self.lateness)
        elif product and action == "remove_from_cart":
            self.cart.take_out(product, ts)

    def _on_call(self, event: Event, ts: float) -> None:
        self._count("call", ts)
        self._touch("call", ts)
        reason = event.get("reason")
        if reason:
            self.call_reasons[reason] = self.call_reasons.get(reason, 0) + 1
            for kind in _REASON_KINDS.get(reason, ()):  # a cancel request is a complaint too
                self._touch(kind, ts)
        outcome = event.get("outcome") or ""
        self.calls_unresolved += outcome == "unresolved"
        self.calls_escalated += outcome == "escalated"
        self.last_call = max(self.last_call, (ts, str(event.get("event_id", "")), outcome))
        if "sentiment" in event:
            self.sentiment_short.add(float(event["sentiment"]), ts)
            self.sentiment_long.add(float(event["sentiment"]), ts)

    def _on_transaction(self, event: Event, ts: float) -> None:
        kind, amount = event.get("kind", "purchase"), float(event["amount"])
        if kind not in AMOUNTS:
            return
        self._count(kind, ts, amount)
        self._commerce = None
        self.totals[kind] += round(amount * SCALE)
        self._touch(kind, ts)
        if kind != "purchase":
            return
        self.purchase_days_dropped, self.first_purchase_day = purchases.add(
            self.purchase_days, self.purchase_days_dropped, self.first_purchase_day, int(ts // DAY))
        for item in event.get("items", []):
            if cat := item.get("category"):
                self.bought[cat] = self.bought.get(cat, 0.0) + float(item.get("quantity", 1))
            if pid := item.get("product_id"):
                self.cart.take_out(pid, ts)

    def _on_profile(self, event: Event, ts: float) -> None:
        self._touch("profile", ts)
        eid = str(event.get("event_id", ""))
        attributes = event.get("attributes", {})
        for key, value in attributes.items():
            if self._newer("a:" + key, ts, eid):
                if value is None:
                    self.attributes.pop(key, None)
                else:
                    self.attributes[key] = value
        owner = event.get("owner") or attributes.get("owner")
        if owner and self._newer("owner", ts, eid):
            self.owner = str(owner)

    def _on_consent(self, event: Event, ts: float) -> None:
        consent.apply(self.consent, self.stamps, {**event, "ts": ts}, prefix="c:")

    def stored(self, now: float | None = None) -> Features:
        """The features as stored (`featureset.compact`: defaults and derived ones left out).
        Cached until the next update; do not modify the result."""
        now = self.last_ts if now is None else now
        if self._cache is None or self._cache[0] != now:
            out, interest = self._compute(now)
            full = {**DEFAULTS, **out}
            full["aov"] = full["monetary"]
            total = sum(v for v in interest.values() if v > 0)
            for cat, v in interest.items():  # as `featureset.expand` does
                full["interest_share_" + cat] = round(v / total, 4) if total and v > 0 else 0.0
            self._cache = (now, out, full)
        return self._cache[1]

    def features(self, now: float | None = None) -> Features:
        """All features as of `now` (default: this customer's latest event time). Cached until
        the next update; do not modify the result."""
        self.stored(now)
        assert self._cache is not None
        return self._cache[2]

    def _compute(self, now: float) -> tuple[Features, dict[str, float]]:
        """Only the features away from their default, so nothing needs filtering after; and
        the interest per category, for the shares."""
        out: Features = {}
        empty = []
        for measure, windowed in self.windows.items():
            for (ckey, akey), (count, units) in zip(_WKEYS[measure], windowed.sums_at(now)):
                if count:
                    out[ckey] = count
                    if akey and units:
                        out[akey] = units / SCALE
            if windowed.empty():
                empty.append(measure)
        for measure in empty:  # nothing left in any window: as if the measure never happened
            del self.windows[measure]
        for kind, seen in self.last.items():
            out[_SINCE[kind]] = round((now - seen) / DAY, 4)
        if self.counts["click"]:
            counts, length, clicks, last = self.sessions.summary(now)
            put(out, _SESSION_KEYS, (*counts, round(length, 1), round(clicks, 4), last))
            carted, value = self.cart.summary(now)
            put(out, ("carted_not_bought", "cart_value", "cart_abandoned"),
                (carted, value, int(bool(carted) and now - self.last["click"] > GAP)))
        if self._commerce is None:  # lifetime figures: recomputed only after a transaction
            self._commerce = self._commerce_features()
        out.update(self._commerce)
        if self.counts["call"]:
            self._service(out, now)
        if self.first_ts is not None:
            put(out, ("tenure_days",), (round((now - self.first_ts) / DAY, 4),))
        interest = {}
        for cat, d in self.interest.items():  # Decayed.value inlined: one per category
            dt = now - d.ref
            if value := round(d.total * exp(INTEREST_RATE * dt) if dt > 0 else d.total, 4):
                out["interest_" + cat] = interest[cat] = value
        return out, interest

    def _commerce_features(self) -> Features:
        out: Features = {}
        n, spend = self.counts["purchase"], self.totals["purchase"] / SCALE
        refunded, paid = self.totals["refund"] / SCALE, self.totals["payment"] / SCALE
        put(out, ("purchases", "frequency", "total_spend", "monetary", "refunds",
                  "total_refunded", "refund_rate", "payments", "total_paid", "categories_bought"),
            (n, max(0, len(self.purchase_days) + self.purchase_days_dropped - 1), round(spend, 4),
             round(spend / n, 4) if n else 0.0, self.counts["refund"], round(refunded, 4),
             round(refunded / spend, 4) if spend else 0.0, self.counts["payment"],
             round(paid, 4), len(self.bought)))
        for cat, qty in self.bought.items():
            out["bought_" + cat] = qty
        return out

    def _service(self, out: Features, now: float) -> None:
        short = self.sentiment_short.value(now)
        put(out, ("calls_unresolved", "calls_escalated", "call_open", "sentiment",
                  "sentiment_trend"),
            (self.calls_unresolved, self.calls_escalated,
             int(self.last_call[2] in OPEN_OUTCOMES), round(short, 4),
             round(short - self.sentiment_long.value(now), 4)))
        for reason, count in self.call_reasons.items():
            out["calls_reason_" + reason] = count

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as plain data under one function (engine/statecodec.py)."""
        from engine import statecodec

        return _restore, (statecodec.dump(self),)

    def __setstate__(self, state: dict[str, Any]) -> None:  # snapshots from before __reduce__
        from engine import statecodec

        statecodec.legacy(self, state)


def _restore(data: tuple[Any, ...]) -> CustomerState:
    from engine import statecodec

    return statecodec.load(data)
