"""A customer's live state, updated event by event in event time, and the features it yields.

`CustomerState.update(event)` folds one validated event in; `features(now)` reads the feature
dictionary as of `now` (event time). Feature names and meanings are listed in `FEATURES`, which
the docs table is generated from.
"""

from __future__ import annotations

from typing import Any

from engine.decay import Decayed, DecayedMean
from engine.types import Event, Features
from engine.windows import WINDOWS, Windowed

DAY = 86400.0
INTEREST_HALF_LIFE = 7 * DAY
SENTIMENT_SHORT, SENTIMENT_LONG = 7 * DAY, 90 * DAY
MEASURES = ("click", "call", "purchase", "refund", "payment")
RECENT_KINDS = ("click", "product_view", "add_to_cart", "call", "complaint", "purchase", "event")
MAX_SEEN = 512
MAX_RECENT = 10
COMPLAINT_REASONS = frozenset({"complaint", "cancel_request"})

FEATURES: dict[str, str] = {
    **{f"{m}_count_{w}": f"number of {m} events in the last {w}" for m in MEASURES for w in WINDOWS},
    **{f"{m}_amount_{w}": f"sum of {m} amounts in the last {w}" for m in ("purchase", "refund", "payment") for w in WINDOWS},
    **{f"days_since_{k}": f"days since the last {k} (event time; -1 if never)" for k in RECENT_KINDS},
    "frequency": "repeat purchases (purchases after the first)",
    "monetary": "average purchase amount",
    "total_spend": "lifetime purchase amount",
    "purchases": "lifetime purchases",
    "aov": "average order value",
    "refund_rate": "refunded amount / purchased amount",
    "tenure_days": "days since the first event",
    "calls_unresolved": "calls ending unresolved",
    "calls_escalated": "calls escalated",
    "sentiment": "decayed mean call sentiment (7-day half-life)",
    "sentiment_trend": "short (7 d) minus long (90 d) decayed sentiment",
    "carted_not_bought": "products added to cart and not bought since",
    "interest_<category>": "click interest in the category, 7-day half-life (views 1, search 1, cart 3)",
    "interest_share_<category>": "the category's share of all current click interest (0..1)",
    "calls_reason_<reason>": "calls for that reason",
    "bought_<category>": "items bought in the category",
}
_INTEREST_WEIGHT = {"product_view": 1.0, "page_view": 0.5, "search": 1.0, "add_to_cart": 3.0,
                    "checkout": 2.0, "offer_view": 0.5, "remove_from_cart": -1.0}


class CustomerState:
    """Everything the flow keeps about one customer. Picklable, for bytewax snapshots."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.seen: dict[str, float] = {}
        self.windows: dict[str, Windowed] = {m: Windowed() for m in MEASURES}
        self.last: dict[str, float] = {}
        self.interest: dict[str, Decayed] = {}
        self.carted: dict[str, float] = {}
        self.bought: dict[str, float] = {}
        self.call_reasons: dict[str, int] = {}
        self.calls_unresolved = 0
        self.calls_escalated = 0
        self.sentiment_short = DecayedMean(SENTIMENT_SHORT)
        self.sentiment_long = DecayedMean(SENTIMENT_LONG)
        self.purchase_days: set[int] = set()
        self.purchase_total = 0.0
        self.purchase_count = 0
        self.refund_total = 0.0
        self.attributes: dict[str, Any] = {}
        self.owner: str | None = None
        self.consent: dict[str, bool] = {}
        self.anonymous_ids: set[str] = set()
        self.recent: list[dict[str, Any]] = []

    def is_duplicate(self, event_id: str) -> bool:
        return event_id in self.seen

    def remember(self, event_id: str, ts: float) -> None:
        self.seen[event_id] = ts
        if len(self.seen) > MAX_SEEN:
            for eid in sorted(self.seen, key=self.seen.__getitem__)[: MAX_SEEN // 4]:
                del self.seen[eid]

    def update(self, event: Event) -> None:
        """Fold one validated event into the state (duplicates are the caller's concern)."""
        ts = float(event["ts"])
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        self._touch("event", ts)
        if anon := event.get("anonymous_id"):
            self.anonymous_ids.add(anon)
        handler = getattr(self, "_on_" + event["type"], None)
        if handler:
            handler(event, ts)
        if event["type"] in ("click", "call", "transaction"):
            self._remember_recent(event, ts)
        for w in self.windows.values():
            w.prune(self.last_ts)

    def _touch(self, kind: str, ts: float) -> None:
        if ts > self.last.get(kind, -1.0):
            self.last[kind] = ts

    def _remember_recent(self, event: Event, ts: float) -> None:
        keep = ("type", "ts", "action", "category", "product_id", "reason", "outcome", "kind",
                "amount", "channel", "sentiment")
        self.recent.append({k: event[k] for k in keep if k in event})
        self.recent.sort(key=lambda e: e["ts"])
        del self.recent[:-MAX_RECENT]

    def _on_click(self, event: Event, ts: float) -> None:
        self.windows["click"].add(ts)
        self._touch("click", ts)
        action = event.get("action", "page_view")
        if action in ("product_view", "add_to_cart"):
            self._touch(action, ts)
        if cat := event.get("category"):
            self.interest.setdefault(cat, Decayed(INTEREST_HALF_LIFE)).add(
                _INTEREST_WEIGHT.get(action, 0.5), ts
            )
        product = event.get("product_id")
        if product and action == "add_to_cart":
            self.carted[product] = max(ts, self.carted.get(product, 0.0))
        elif product and action == "remove_from_cart":
            self.carted.pop(product, None)

    def _on_call(self, event: Event, ts: float) -> None:
        self.windows["call"].add(ts, float(event.get("duration_s", 0.0)))
        self._touch("call", ts)
        reason = event.get("reason")
        if reason:
            self.call_reasons[reason] = self.call_reasons.get(reason, 0) + 1
            if reason in COMPLAINT_REASONS:
                self._touch("complaint", ts)
        outcome = event.get("outcome")
        self.calls_unresolved += outcome == "unresolved"
        self.calls_escalated += outcome == "escalated"
        if "sentiment" in event:
            self.sentiment_short.add(float(event["sentiment"]), ts)
            self.sentiment_long.add(float(event["sentiment"]), ts)

    def _on_transaction(self, event: Event, ts: float) -> None:
        kind, amount = event.get("kind", "purchase"), float(event["amount"])
        self.windows[kind].add(ts, amount)
        if kind == "refund":
            self.refund_total += amount
            return
        if kind != "purchase":
            return
        self._touch("purchase", ts)
        self.purchase_count += 1
        self.purchase_total += amount
        self.purchase_days.add(int(ts // DAY))
        for item in event.get("items", []):
            if cat := item.get("category"):
                self.bought[cat] = self.bought.get(cat, 0.0) + float(item.get("quantity", 1))
            if (pid := item.get("product_id")) and self.carted.get(pid, ts + 1) <= ts:
                del self.carted[pid]

    def _on_profile(self, event: Event, ts: float) -> None:
        for key, value in event.get("attributes", {}).items():
            if value is None:
                self.attributes.pop(key, None)
            else:
                self.attributes[key] = value
        if owner := event.get("owner") or event.get("attributes", {}).get("owner"):
            self.owner = str(owner)

    def _on_consent(self, event: Event, ts: float) -> None:
        self.consent[event["purpose"]] = bool(event["granted"])

    def features(self, now: float | None = None) -> Features:
        """All features as of `now` (default: this customer's latest event time)."""
        now = self.last_ts if now is None else now
        out: Features = {}
        for measure, windowed in self.windows.items():
            for w in WINDOWS:
                count, amount = windowed.get(w, now)
                out[f"{measure}_count_{w}"] = count
                if measure in ("purchase", "refund", "payment"):
                    out[f"{measure}_amount_{w}"] = amount
        for kind in RECENT_KINDS:
            seen = self.last.get(kind)
            out[f"days_since_{kind}"] = round((now - seen) / DAY, 4) if seen is not None else -1.0
        n = self.purchase_count
        out["purchases"] = n
        out["frequency"] = max(0, len(self.purchase_days) - 1)
        out["total_spend"] = round(self.purchase_total, 4)
        out["monetary"] = out["aov"] = round(self.purchase_total / n, 4) if n else 0.0
        out["refund_rate"] = round(self.refund_total / self.purchase_total, 4) if self.purchase_total else 0.0
        out["tenure_days"] = round((now - (self.first_ts or now)) / DAY, 4)
        out["calls_unresolved"] = self.calls_unresolved
        out["calls_escalated"] = self.calls_escalated
        short = self.sentiment_short.value(now)
        out["sentiment"] = round(short, 4)
        out["sentiment_trend"] = round(short - self.sentiment_long.value(now), 4)
        out["carted_not_bought"] = len(self.carted)
        interest = {cat: decayed.value(now) for cat, decayed in self.interest.items()}
        total = sum(v for v in interest.values() if v > 0)
        for cat, value in interest.items():
            out[f"interest_{cat}"] = round(value, 4)
            out[f"interest_share_{cat}"] = round(max(value, 0.0) / total, 4) if total else 0.0
        for reason, count in self.call_reasons.items():
            out[f"calls_reason_{reason}"] = count
        for cat, qty in self.bought.items():
            out[f"bought_{cat}"] = qty
        return out


_DEFAULTS: dict[str, float] = {
    name: (-1.0 if name.startswith("days_since_") else 0.0)
    for name in FEATURES if "<" not in name
}


def compact(features: Features) -> Features:
    """What is stored: features at their default (0, or -1 for "never") are left out.

    >>> compact({"purchases": 0, "total_spend": 5.0, "days_since_call": -1.0})
    {'total_spend': 5.0}
    """
    return {k: v for k, v in features.items() if v != _DEFAULTS.get(k, 0.0)}


def expand(stored: Features) -> Features:
    """The full feature dictionary from its compact form.

    >>> expand({"total_spend": 5.0})["days_since_call"], expand({})["purchases"]
    (-1.0, 0.0)
    """
    return {**_DEFAULTS, **stored}
