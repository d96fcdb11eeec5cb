"""One customer's side of the loop: fold an event in, join feedback to decisions, label
outcomes, score, and say what to write and which alerts to raise.

`process(state, event, ctx)` is pure apart from the state it is handed: the flow calls it with
bytewax's per-customer state; tests call it directly.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import consent, drift, statecodec, store, uplift, value
from engine.alerts import Cooldown, alive_alert, churn_alert
from engine.features import DAY, CustomerState, compact
from engine.models import OnlineModel
from engine.money import Currencies
from engine.opportunity import AlertRules
from engine.responses import (
    Output,
    Pending,
    adopt,
    example,
    expire,
    handed_over,
    next_deadline,
    on_decision,
    on_feedback,
)
from engine.scoring import scorer_for
from engine.types import Event
from engine.vector import vectorize

LOG = logging.getLogger("nextbest.flow")


@dataclass
class Context:
    """What processing needs besides the state: models, reward windows, thresholds."""

    models: Callable[[], dict[str, OnlineModel]] = dict
    reward_window: Callable[[str], float] = lambda offer_id: 7 * DAY
    category: Callable[[str], str | None] = lambda offer_id: None
    alert_rules: Callable[[], AlertRules] = AlertRules
    churn_threshold: float = 0.6
    alert_cooldown_s: float = 7 * DAY
    lateness: float = 3600.0  # settings.lateness_s: how late an event may be and count as on time
    value_params: Callable[[], dict[str, Any] | None] = lambda: None  # population fit (value.py)
    scorers: dict[str, Any] = field(default_factory=dict)  # engine.scoring.scorer_for's cache
    currencies: Currencies = field(default_factory=Currencies)  # amounts in one unit


@dataclass
class Customer:
    """bytewax state for one customer key."""

    state: CustomerState
    pending: dict[str, Pending] = field(default_factory=dict)
    settled: array = field(default_factory=lambda: array("I"))  # `responses.MAX_SETTLED`
    cooldown: Cooldown = field(default_factory=Cooldown)
    churn: float | None = None
    scores: dict[str, Any] = field(default_factory=lambda: {"outcomes": {}})
    exposures: dict[str, tuple[float, bool, str | None]] = field(default_factory=dict)
    watch_at: float | None = None
    alive_at: float | None = None  # event time when silence takes p_alive under its threshold
    alive_alerted: float | None = None  # last purchase time of the history already alerted on

    def __reduce__(self) -> tuple[Any, ...]:
        """Plain data under one function, like `CustomerState` (a snapshot per touched
        customer per epoch)."""
        rest = dict(self.__dict__)
        rest["state"] = statecodec.dump(self.state)
        rest["pending"] = {d: (p.ts, p.x, p.deadlines, p.channel, *((p.repeat,) if p.repeat else ()))
                           for d, p in self.pending.items()}
        rest["cooldown"] = vars(self.cooldown)
        return _restore, (rest,)


def _restore(rest: dict[str, Any]) -> Customer:
    c = Customer(statecodec.load(rest.pop("state")))
    c.pending = {d: Pending(*p) for d, p in rest.pop("pending").items()}
    c.cooldown.__dict__.update(rest.pop("cooldown"))
    rest.pop("decisions", None)  # snapshots from before the API's decision index
    c.__dict__.update(rest)
    return c


def scores(c: Customer, models: dict[str, OnlineModel], x: dict[str, float]) -> dict[str, Any]:
    outcomes = {
        name.removeprefix("outcome:"): round(m.predict_one(x), 4)
        for name, m in models.items() if name.startswith("outcome:") and m.examples
    }
    out: dict[str, Any] = {"outcomes": outcomes}
    if "churned" in outcomes:
        out["churn_risk"] = outcomes["churned"]
    return out


def process(c: Customer | None, ev: Event, ctx: Context) -> tuple[Customer | None, list[Output]]:
    """Fold one event in and say what to write (see `process_batch`)."""
    return process_batch(c, [ev], ctx)


def process_batch(c: Customer | None, events: list[Event], ctx: Context,
                  ) -> tuple[Customer | None, list[Output]]:
    """Fold a batch of one customer's events in, then compute features, scores, alerts and the
    profile document once: the same result as one event at a time, at a fraction of the cost."""
    out: list[Output] = []
    touched, soonest = False, None  # soonest: the earliest reward window of decisions folded in
    for ev in events:
        if ev["type"] in ("forget", "erase"):
            out += _drop(c, ev)
            c, touched = None, False
            continue
        if c is None and ev["type"] == "tick":
            continue  # for a customer since forgotten or erased: nothing to wake
        c = c or Customer(CustomerState(ev["customer_id"], ctx.lateness))
        try:
            folded = _fold(c, ev, ctx, out)
        except Exception as exc:  # a fault no check foresaw: this event is dead-lettered with
            LOG.exception("event not processed")  # why, the batch's others go on
            out.append(unprocessed(ev, exc))
            continue
        # a decision changes no feature and nothing in the document: not re-snapshotted for it
        if folded:
            if ev["type"] != "decision":
                touched = True
            elif (pend := c.pending.get(ev["decision_id"])) and pend.deadlines:
                soonest = min(soonest or math.inf, *pend.deadlines.values())
    if c is not None and soonest is not None and not touched:
        _watch_sooner(c, soonest, out)  # decisions alone: nothing else changed
    elif c is not None and touched:
        if all(ev["type"] == "tick" for ev in events) and not _silence_due(c):
            _rewatch(c, out)  # a tick that only settled offers as ignored: nothing else changed
        else:  # clicks alone do not move outcome scores enough to re-score (the API does on read)
            _finish(c, ctx, out, events=events,
                    rescore=any(ev["type"] not in ("click", "decision") for ev in events))
    if c is not None:
        c.state.release()
    return c, out


def unprocessed(ev: Event, exc: Exception) -> Output:
    """A dead letter for an event processing failed on (the sink's "dlq" write)."""
    raw = store.encode({k: v for k, v in ev.items() if k not in ("_p", "_seq")})
    return ("dlq", raw, f"not processed: {type(exc).__name__}: {exc}"[:500], f"partition {ev.get('_p')}")


def _silence_deadlines(c: Customer) -> tuple[float | None, float | None]:
    return drift.watch_deadline(c.state.purchase_days), getattr(c, "alive_at", None)


def _silence_due(c: Customer) -> bool:
    """Has the clock reached a moment when this customer's silence becomes abnormal?"""
    return any(d is not None and d <= c.state.last_ts for d in _silence_deadlines(c))


def _watch_sooner(c: Customer, deadline: float, out: list[Output]) -> None:
    """`_rewatch` for a batch of decision records only, in O(1): a new reward window can only
    bring the watch sooner (a watch already passed was ticked, or its tick is on its way and
    rewatches)."""
    w = c.watch_at
    if w is None or w <= c.state.last_ts or deadline < w:
        c.watch_at = deadline
        out.append(("watch", c.state.customer_id, deadline))


def _rewatch(c: Customer, out: list[Output]) -> None:
    """The next event time at which silence matters to this customer (a watch tick then): when
    it would become abnormal (alerts), or an offer's reward window closes (ignored: a customer
    who never comes back would otherwise leave the offer models with no negative)."""
    st = c.state
    due = [d for d in (*_silence_deadlines(c), next_deadline(c))
           if d is not None and d > st.last_ts]  # a passed deadline has had its tick
    deadline = min(due) if due else None
    if deadline != c.watch_at:
        c.watch_at = deadline
        out.append(("watch", st.customer_id, deadline))


def _drop(c: Customer | None, ev: Event) -> list[Output]:
    cid = ev["customer_id"]
    # out of the value model's sample too: a visitor merged away is not a customer of its own,
    # and an erased customer's spend must not shape everyone's CLV
    gone = ("summary", "population", cid, None, ev["ts"])
    if ev["type"] == "forget":  # merged into `into` on identify; its open decisions go along
        given = handed_over(c) if c is not None and ev.get("into") else {}
        handover = [("adopt", ev["into"], given, ev["ts"], cid)] if given else []
        return [*handover, ("forget", cid, ev.get("into")), gone]
    record = (ev.get("_p"), ev.get("_id"), ev["event_id"], ev["ts"])
    if c is None:
        return [("erase", cid, [], [], record), gone]
    # every decision's key is in the API's per-customer index, which erasure reads; these
    # are the ones the flow still holds (a list of the latest 20 was ~1.4 KB per customer)
    return [("erase", cid, sorted(c.state.anonymous_ids), list(c.pending), record), gone]


def _fold(c: Customer, ev: Event, ctx: Context, out: list[Output]) -> bool:
    """One event into the state; False for a duplicate."""
    st = c.state
    if not st.first_time(ev["event_id"]):
        return False
    kind = ev["type"]
    if kind == "decision":
        out += on_decision(c, ev, ctx)
    elif kind == "adopt":
        adopt(c, ev.get("decisions", []), ev.get("settled", []))
    elif kind != "tick":
        if kind == "transaction" and "currency" in ev:
            ev, unconverted = ctx.currencies.in_base(ev)
            if unconverted:  # no rate: taken as it is, and counted (GET /v1/status)
                out.append(("unconverted", unconverted))
        owner = st.owner
        st.update(ev)
        if kind == "profile" and st.owner != owner and owner is not None:  # changed hands
            out.append(("owner", st.customer_id, owner, st.owner))
        if kind == "transaction" and ev.get("kind", "purchase") == "purchase" and c.exposures:
            cats = {i["category"] for i in ev.get("items", []) if i.get("category")}
            out += uplift.on_purchase(c.exposures, cats, ev["ts"])
    st.last_ts = max(st.last_ts, ev["ts"])
    if kind == "feedback":
        out += on_feedback(c, ev)
    elif kind == "outcome":
        x = vectorize(st.features(), st.attributes)
        out.append(example("outcome:" + ev["name"], x, bool(ev["value"]), ev["ts"]))
    out += expire(c, st.last_ts)
    uplift.expire(c.exposures, st.last_ts)
    return True


def _finish(c: Customer, ctx: Context, out: list[Output], rescore: bool = True,
            events: list[Event] = ()) -> None:  # type: ignore[assignment]
    """Features, scores, alerts and the profile document, once per batch."""
    st = c.state
    features = st.features()
    rules = ctx.alert_rules()  # once per batch: it checks the file for changes
    if rescore:
        models = ctx.models()
        if any(name.startswith("outcome:") for name in models):
            c.scores = scores(c, models, vectorize(features, st.attributes))
            out += _alerts(c, c.scores, st.last_ts, ctx, models, rules)
    extra = {"offers": _offer_scores(c, ctx, features)} if rules.wants_offer_scores else {}
    out += _behaviour_alerts(c, features, rules, rescore, extra)
    c.alive_at = _alive(c, ctx, rules, out) if rescore else getattr(c, "alive_at", None)
    _rewatch(c, out)
    doc = snapshot(c, features, c.scores)
    if doc["v"] and any(ev.get("type") == "transaction" for ev in events):
        out.append(("summary", "population", st.customer_id, doc["v"], st.last_ts))
    out.append(("profile", st.customer_id, doc))


def _offer_scores(c: Customer, ctx: Context, features: dict[str, Any]) -> dict[str, float]:
    """P(accept) of every learned offer model for this customer, for opportunity rules that
    ask (`scores.offers.<offer id>`): one matrix product over the published models."""
    models = {n.removeprefix("offer:"): m for n, m in ctx.models().items()
              if n.startswith("offer:") and m.examples}
    if not models:
        return {}
    scorer = scorer_for(models, ctx.scorers)
    return {k: round(v, 4) for k, v in scorer.predict(vectorize(features, c.state.attributes)).items()}


def _behaviour_alerts(c: Customer, features: dict[str, Any], rules: AlertRules,
                      rescore: bool, extra_scores: dict[str, Any] | None = None) -> list[Output]:
    """Opportunities (rules/alerts.yaml) every batch; drift when more than clicks arrived."""
    st = c.state
    scores_now = {**c.scores, **extra_scores} if extra_scores else c.scores
    data = {"features": features, "attributes": st.attributes, "scores": scores_now}
    found = [(f"opportunity:{a.data['rule']}", a, a.data["cooldown_days"] * DAY)
             for a in rules.opportunities_for(st.customer_id, st.owner, data, st.last_ts)]
    cooldown = rules.thresholds.get("cooldown_days", 7.0) * DAY
    visits = drift.visits_drop(st.customer_id, st.owner, features, st.purchase_total, st.last_ts)
    if visits:  # a few lookups: checked on every batch, clicks included
        found.append(("drift:visits", visits, cooldown))
    if rescore:
        rhythm = drift.rhythm_break(st.customer_id, st.owner, st.purchase_days, st.last_ts / DAY,
                                    st.purchase_total, st.last_ts)
        mood = drift.sentiment_drop(st.customer_id, st.owner, st.sentiment_short.value(st.last_ts),
                                    st.sentiment_long.value(st.last_ts),
                                    int(features.get("call_count_30d", 0)), st.purchase_total,
                                    st.last_ts, int(features.get("call_count_90d", 0)))
        spend = drift.spend_drop(st.customer_id, st.owner, features, st.last_ts)
        found += [(f"drift:{a.data['signal']}", a, cooldown) for a in (rhythm, mood, spend) if a]
    return [("alert", a.to_dict()) for key, a, cool in found
            if c.cooldown.allow(key, st.last_ts, cool)]


def _alerts(c: Customer, sc: dict[str, Any], ts: float, ctx: Context,
            models: dict[str, OnlineModel], rules: AlertRules) -> list[Output]:
    churn = sc.get("churn_risk")
    model = models.get("outcome:churned")
    if churn is None or model is None or not model.mature():
        return []
    prev, c.churn = c.churn, churn
    limits = rules.thresholds  # rules/alerts.yaml, re-read on change, wins
    alert = churn_alert(c.state.customer_id, c.state.owner, churn, prev,
                        limits.get("churn_risk", ctx.churn_threshold), c.state.purchase_total, ts)
    cooldown = limits.get("cooldown_days", ctx.alert_cooldown_s / DAY) * DAY
    if alert and c.cooldown.allow("churn_risk", ts, cooldown):
        return [("alert", alert.to_dict())]
    return []


def _alive(c: Customer, ctx: Context, rules: AlertRules, out: list[Output]) -> float | None:
    """The p_alive churn signal (rules/alerts.yaml `p_alive`, for customers who spent at least
    `p_alive_min_spend`): alert once per purchase history when it falls under the threshold,
    else return the event time at which silence would take it there (a watch tick)."""
    st, limits = c.state, rules.thresholds
    bg = (ctx.value_params() or {}).get("bgnbd")
    threshold = float(limits.get("p_alive") or 0.0)
    v = value.summary(st.purchase_history(), st.purchase_total, st.purchase_count, st.last_ts)
    if not bg or not threshold or not v or v["x"] < 1 \
            or st.purchase_total < float(limits.get("p_alive_min_spend", 0.0)):
        return None
    if getattr(c, "alive_alerted", None) == v["tl"]:
        return None  # already raised for this purchase history; a new purchase re-arms it
    t_x = (v["tl"] - v["t0"]) / DAY
    p = value.p_alive(bg, v["x"], t_x, (st.last_ts - v["t0"]) / DAY)
    # silent no longer than their own usual gap between purchases: no sign of stopping, however
    # low the population's parameters put p_alive (a cohort of bursts made it 26% a day after)
    usual_end = v["tl"] + t_x / v["x"] * DAY
    alert = alive_alert(st.customer_id, st.owner, p, threshold, (st.last_ts - v["tl"]) / DAY,
                        st.purchase_total, st.last_ts) if st.last_ts >= usual_end else None
    if alert is None:
        age = value.alive_until(bg, v["x"], t_x, threshold)
        return None if age is None else max(v["t0"] + age * DAY, usual_end) + 1.0
    c.alive_alerted = v["tl"]
    cooldown = float(limits.get("cooldown_days", 7.0)) * DAY
    if c.cooldown.allow("churn_risk:p_alive", st.last_ts, cooldown):
        out.append(("alert", alert.to_dict()))
    return None


def snapshot(c: Customer, features: dict[str, float], sc: dict[str, Any]) -> dict[str, Any]:
    """What is written to Redis for the API: one compact document per customer."""
    st = c.state
    return {
        "f": st.stored() if features is st.features() else compact(features),
        "a": st.attributes, "c": st.consent, "o": st.owner, "t": st.last_ts,
        "r": st.interactions(), "s": sc, "ids": sorted(st.anonymous_ids),
        **({"ct": consent.stamped(st.consent, st.stamps, "c:")} if st.consent else {}),
        "v": value.summary(st.purchase_history(), st.purchase_total, st.purchase_count, st.last_ts),
    }
