"""Alert life with planted changes, through the customer step the flow runs (`process_batch`)
and silence ticks scheduled as the flow's sink schedules them: a stopped rhythm is flagged
without the customer's events within a stated delay, steady customers are left alone for a
year, the cooldown suppresses repeats, churn alerts follow thresholds that reload from
rules/alerts.yaml, and severity weighs what the customer is worth."""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from engine import drift
from engine.alerts import SEVERITIES, churn_alert, severity_for
from engine.customer import Context, Customer, process_batch
from engine.models import OnlineModel
from engine.opportunity import AlertRules
from engine.rules import RuleError
from flows.main import _alert_rules, _reloading

T0 = 1_767_225_600.0
DAY = 86400.0
RULES = AlertRules.load(Settings().rules_dir / "alerts.yaml")


def buy(cid: str, ts: float, n: int, amount: float = 50.0) -> dict:
    return {"event_id": f"{cid}-p{n}", "type": "transaction", "ts": ts, "customer_id": cid,
            "kind": "purchase", "amount": amount, "items": [{"category": "home"}]}


def live(events: list[dict], until: float, ctx: Context | None = None) -> list[dict]:
    """Events in time order, the clock advancing hourly to `until`; a customer's watch deadline,
    once passed, becomes a tick (as flows/sink.py sweeps). Returns the alerts raised."""
    ctx = ctx or Context(alert_rules=lambda: RULES)
    states: dict[str, Customer | None] = {}
    watch: dict[str, float] = {}
    alerts: list[dict] = []

    def step(cid: str, evs: list[dict]) -> None:
        states[cid], out = process_batch(states.get(cid), evs, ctx)
        for item in out:
            if item[0] == "alert":
                alerts.append(item[1])
            elif item[0] == "watch":
                watch[item[1]] = item[2]

    events = sorted(events, key=lambda e: e["ts"])
    clock, i = T0, 0
    while clock <= until:
        while i < len(events) and events[i]["ts"] <= clock:
            step(events[i]["customer_id"], [events[i]])
            i += 1
        for cid, deadline in list(watch.items()):
            if deadline is not None and deadline <= clock:
                del watch[cid]
                step(cid, [{"type": "tick", "customer_id": cid, "ts": clock,
                            "event_id": f"tick:{cid}:{deadline:.0f}"}])
        clock += 3600.0
    return alerts


def test_rhythm_stop_raises_drift_through_ticks_within_the_stated_delay() -> None:
    # weekly buyer for 8 weeks, then nothing at all from them: only ticks can notice
    events = [buy("q", T0 + k * 7 * DAY + 600, k) for k in range(8)]
    alerts = [a for a in live(events, T0 + 120 * DAY) if a["type"] == "customer_drift"]
    last = T0 + 49 * DAY + 600
    # stated bound: 7 regular weekly gaps make silence unusual after silence_limit days
    # (<= 3 gaps for a regular weekly buyer), raised within the hourly sweep after that
    limit = drift.silence_limit({int((T0 + k * 7 * DAY) // DAY) for k in range(8)})
    assert limit is not None and limit <= 21.0
    assert len(alerts) == 1 and alerts[0]["data"]["signal"] == "purchase_rhythm"
    delay = alerts[0]["ts"] - last
    assert limit * DAY - DAY <= delay <= (limit + 1) * DAY + 3600, (delay / DAY, limit)


def test_steady_customers_get_no_drift_alert_over_a_year() -> None:
    rng = random.Random(5)
    events: list[dict] = []
    for c in range(10):  # buy weekly give or take two days, browse, call happily
        cid, t, n = f"s{c}", T0 + rng.uniform(0, DAY), 0
        while t < T0 + 365 * DAY:
            events.append(buy(cid, t, n, round(rng.uniform(30, 70), 2)))
            events.append({"event_id": f"{cid}-k{n}", "type": "click", "ts": t + 3 * DAY,
                           "customer_id": cid, "action": "page_view"})
            if n % 6 == 0:
                events.append({"event_id": f"{cid}-c{n}", "type": "call", "ts": t + DAY,
                               "customer_id": cid, "reason": "billing",
                               "sentiment": round(rng.uniform(-0.2, 0.8), 2)})
            t += rng.uniform(5.0, 9.0) * DAY
            n += 1
    # (an irregular buyer's silences are tested statistically by `./nb bench alerts`: about
    # drift.ALPHA_MONTH false alerts per steady customer-month)
    alerts = live(events, T0 + 365 * DAY)
    assert [a for a in alerts if a["type"] in ("customer_drift", "churn_risk")] == []
    # the planted contrast in the same run: one of them stops in month 7 and is flagged
    cut = [e for e in events if not (e["customer_id"] == "s3" and e["ts"] > T0 + 200 * DAY)]
    flagged = [a for a in live(cut, T0 + 365 * DAY) if a["type"] == "customer_drift"]
    assert [a["customer_id"] for a in flagged] == ["s3"]


def test_cooldown_suppresses_repeated_drift_alerts() -> None:
    # an angry call every day for three weeks: the drift condition holds every day, alerts
    # come once per cooldown_days (rules/alerts.yaml) and no more
    calm = [{"event_id": f"m{k}", "type": "call", "ts": T0 + k * 20 * DAY, "customer_id": "m",
             "reason": "billing", "sentiment": 0.6} for k in range(4)]
    angry = [{"event_id": f"a{k}", "type": "call", "ts": T0 + (70 + k) * DAY, "customer_id": "m",
              "reason": "complaint", "sentiment": -0.9} for k in range(21)]
    alerts = [a for a in live(calm + angry, T0 + 95 * DAY) if a["type"] == "customer_drift"]
    cooldown = RULES.thresholds["cooldown_days"] * DAY
    times = [a["ts"] for a in alerts]
    assert 2 <= len(alerts) <= 21 / RULES.thresholds["cooldown_days"] + 1, len(alerts)
    assert all(b - a >= cooldown for a, b in itertools.pairwise(times))


def _churn_model() -> OnlineModel:
    """A real River model that learned 'complaints and no purchases mean churn'."""
    rng, model = random.Random(3), OnlineModel("outcome:churned")
    for _ in range(400):
        churned = rng.random() < 0.3
        x = {"calls_reason_complaint": float(churned and rng.random() < 0.9),
             "days_since_purchase": rng.uniform(20, 60) if churned else rng.uniform(0, 15)}
        model.learn_one(x, churned)
    assert model.mature()
    return model


def test_churn_alert_follows_the_threshold_in_alerts_yaml_reloaded(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "alerts.yaml"
    path.write_text("thresholds: {churn_risk: 0.999, cooldown_days: 7}\nopportunities: []\n")
    rules = _alert_rules(Settings(rules_dir=folder))  # the flow's reloading reader
    models = {"outcome:churned": _churn_model()}
    ctx = Context(models=lambda: models, alert_rules=rules, churn_threshold=0.6)

    def leave(cid: str) -> tuple[Customer | None, list[dict]]:
        """A good customer, then a complaint 40 days after their last purchase."""
        c, _ = process_batch(None, [buy(cid, T0, 0, 500.0), buy(cid, T0 + DAY, 1, 500.0)], ctx)
        assert c is not None and c.churn is not None and c.churn < 0.5, c.churn
        c, out = process_batch(c, [{"event_id": f"{cid}-c", "type": "call", "ts": T0 + 41 * DAY,
                                    "customer_id": cid, "reason": "complaint",
                                    "sentiment": -0.8}], ctx)
        return c, [o[1] for o in out if o[0] == "alert" and o[1]["type"] == "churn_risk"]

    c, alerts = leave("r1")
    assert c is not None and c.churn is not None and 0.6 < c.churn < 0.999, c.churn
    assert alerts == []  # above the settings' 0.6, below the file's threshold: the file wins
    # sales ops lower the threshold in the file; no restart: once the flow looks at the file
    # again (once a second), the next crossing is judged by it
    path.write_text("thresholds: {churn_risk: 0.5, cooldown_days: 7}\nopportunities: []\n")
    os.utime(path, (T0, T0 + 10))  # a distinct mtime, as an edit seconds later would have
    time.sleep(1.05)
    c, alerts = leave("r2")
    assert len(alerts) == 1 and "(threshold 0.50)" in alerts[0]["reasons"][0]


BROKEN_RULES = [  # an edit to rules/alerts.yaml, and what the error must name
    ("opportunities:\n  - {id: a, when: 'true', cooldown_days: soon}\n", "a: cooldown_days"),
    ("opportunities:\n  - {id: a, when: 'true', severity: urgent}\n", "a: severity"),
    ("opportunities:\n  - {id: a, when: 'true', type: model_drift}\n", "a: type"),
    ("opportunities:\n  - {id: a, when: 5}\n", "a: when"),
    ("opportunities:\n  - {id: a, when: 'features.x >>> 3'}\n", "a.when"),
    ("opportunities:\n  - {when: 'true'}\n", "#0: id"),
    ("opportunities:\n  - just words\n", "#0: needs a mapping"),
    ("opportunities: {a: 1}\n", "opportunities"),
    ("opportunities:\n  - {id: a, when: 'true'}\n  - {id: a, when: 'false'}\n", "duplicate"),
    ("thresholds: {churn_risk: high}\n", "thresholds.churn_risk"),
    ("thresholds: [0.5]\n", "thresholds"),
    ("opportunities: [\n", "cannot read"),
]


def test_a_broken_alerts_yaml_is_a_clear_error_and_the_flow_keeps_its_last_good_rules(
        tmp_path: Path, caplog: Any) -> None:
    """A sales-ops typo must not stop the flow: every mistake is a `RuleError` naming the rule
    and the field (a bad number or expression raised ValueError or TypeError before, which the
    flow's reloading reader let through), and the reader keeps the last good rules and logs
    why, once per edit."""
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "alerts.yaml"
    good = "opportunities:\n  - {id: big, when: 'features.total_spend >= 1000'}\n"
    path.write_text(good)
    rules = _reloading(path, AlertRules.load, AlertRules(), every_s=0.0)  # `_alert_rules`'s reader
    assert [o.id for o in rules().opportunities] == ["big"]
    for n, (text, named) in enumerate(BROKEN_RULES):
        path.write_text(text)
        with pytest.raises(RuleError, match=re.escape(named)):
            AlertRules.load(path)
        os.utime(path, (T0, T0 + n))  # a distinct mtime per edit
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nextbest.flow"):
            assert [o.id for o in rules().opportunities] == ["big"]
            rules()
        assert [r.getMessage() for r in caplog.records if named in r.getMessage()], text
        assert len(caplog.records) == 1  # once per edit, not once per batch
    path.write_text("opportunities:\n  - {id: a, when: 'true', title: null, cooldown_days: 3}\n"
                    "  - {id: b, when: 'true', type: churn_risk}\n")
    os.utime(path, (T0, T0 + 100))
    a, b = rules().opportunities  # fixed: read again; a null title is the rule's id
    assert (a.id, a.title, a.severity, a.cooldown_days) == ("a", "a", "medium", 3.0)
    assert [x.type for x in rules().opportunities_for("c", "rep", {}, T0)] == \
        ["opportunity", "churn_risk"]  # a rule raises the type it names, an opportunity if none


def test_churn_alert_on_crossing_only_and_severity_weighs_value() -> None:
    assert churn_alert("c", None, 0.7, 0.5, 0.6, 100.0, T0) is not None  # crossing upwards
    assert churn_alert("c", None, 0.8, 0.7, 0.6, 100.0, T0) is None  # already above: no repeat
    assert churn_alert("c", None, 0.5, None, 0.6, 100.0, T0) is None  # below
    top = churn_alert("top", "rep1", 0.7, 0.5, 0.6, 8000.0, T0)
    once = churn_alert("once", "rep1", 0.7, 0.5, 0.6, 15.0, T0)
    assert top is not None and once is not None
    assert SEVERITIES.index(top.severity) > SEVERITIES.index(once.severity)
    assert (top.severity, once.severity) == ("high", "low")
    assert severity_for(0.95, 5000.0) == "critical" and severity_for(0.95, 0.0) == "medium"


# a BG/NBD fit of the CDNOW population (lifetimes' documented example): real-world parameters
CDNOW_BG = {"bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}}


def p_alive_alerts(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["type"] == "churn_risk" and a["data"].get("signal") == "p_alive"]


def test_p_alive_alert_raised_by_silence_at_the_predicted_time_and_once():
    from engine import value

    ctx = Context(alert_rules=lambda: RULES, value_params=lambda: CDNOW_BG)
    threshold = RULES.thresholds["p_alive"]
    days = [0, 9, 20, 31, 40]  # five purchase days, 40 per visit: spend 200 >= p_alive_min_spend
    events = [buy("fading", T0 + d * DAY, i, amount=40.0) for i, d in enumerate(days)]
    events += [buy("small", T0 + d * DAY, i, amount=10.0) for i, d in enumerate(days)]
    expected = value.alive_until(CDNOW_BG["bgnbd"], len(days) - 1, float(days[-1]), threshold)
    assert expected is not None and expected > days[-1]
    before = live(events, T0 + (expected - 1) * DAY, ctx)
    assert p_alive_alerts(before) == []  # a day before p_alive reaches the threshold: nothing
    alerts = p_alive_alerts(live(events, T0 + 400 * DAY, ctx))
    assert [a["customer_id"] for a in alerts] == ["fading"]  # once; the 50-unit buyer never
    a = alerts[0]
    delay = a["ts"] / DAY - (T0 / DAY + expected)
    assert 0 <= delay <= 1.0 / 24 + 1e-6  # the hourly sweep after the predicted moment
    assert a["owner"] is None and a["score"] >= 1 - threshold and "without a purchase" in a["reasons"][0]
    assert a["data"]["p_alive"] <= threshold  # (rounded to 4 places)


def test_p_alive_alert_rearmed_by_a_new_purchase_and_absent_without_a_population_fit():
    ctx = Context(alert_rules=lambda: RULES, value_params=lambda: CDNOW_BG)
    days = [0, 9, 20, 31, 40]
    events = [buy("back", T0 + d * DAY, i, amount=40.0) for i, d in enumerate(days)]
    events.append(buy("back", T0 + 300 * DAY, 99, amount=40.0))  # returns after an alert ...
    alerts = p_alive_alerts(live(events, T0 + 900 * DAY, ctx))
    assert len(alerts) == 2 and alerts[0]["ts"] < T0 + 300 * DAY < alerts[1]["ts"]  # ... and fades
    no_fit = Context(alert_rules=lambda: RULES)  # before the population is fitted: no signal
    assert p_alive_alerts(live(events, T0 + 900 * DAY, no_fit)) == []


def click(cid: str, ts: float, n: int) -> dict:
    return {"event_id": f"{cid}-k{n}", "type": "click", "ts": ts, "customer_id": cid,
            "action": "page_view", "page": "/"}


def visits_alerts(alerts: list[dict]) -> list[dict]:
    return [a for a in alerts if a["type"] == "customer_drift" and a["data"].get("signal") == "visits"]


def test_a_regular_visitor_who_stops_coming_is_flagged_and_steady_visitors_are_not():
    rng = random.Random(8)
    events: list[dict] = []
    for i in range(12):  # steady: ~1 click a day (Poisson) for a year
        t, n = T0, 0
        while t < T0 + 365 * DAY:
            t += rng.expovariate(1 / DAY)
            events.append(click(f"steady{i}", t, n))
            n += 1
    t, n = T0, 0
    while t < T0 + 90 * DAY:  # fading: the same for 90 days, then one visit on day 130
        t += rng.expovariate(1 / DAY)
        events.append(click("fading", t, n))
        n += 1
    events.append(click("fading", T0 + 130 * DAY, n))
    alerts = visits_alerts(live(events, T0 + 366 * DAY))
    assert [a["customer_id"] for a in alerts] == ["fading"]  # the one visit shows the drop
    a = alerts[0]
    assert a["ts"] == T0 + 130 * DAY and a["data"]["to"] == 1.0 and a["data"]["from"] >= 20
    assert a["reasons"][0].startswith("visits fell to 1 in the last 30 days")


def test_opportunity_rules_can_use_offer_propensities():
    """Cross-sell from propensity thresholds: `scores.offers.<offer id>` in rules/alerts.yaml."""
    from engine.vector import vectorize

    rules = AlertRules.parse({"opportunities": [{
        "id": "card_likely", "title": "Likely to take the Gold card",
        "when": "(scores.offers.gold_card ?? 0) >= 0.6 and (attributes.gold_card ?? false) == false",
    }]}, "alerts.yaml")
    assert rules.wants_offer_scores and not RULES.wants_offer_scores  # the shipped rules: no cost
    rng = random.Random(2)
    model = OnlineModel("offer:gold_card")
    for _ in range(600):  # the learned truth: VIPs take the card
        vip = rng.random() < 0.5
        model.learn_one(vectorize({"purchases": 1.0}, {"vip": vip}), vip and rng.random() < 0.9)
    ctx = Context(alert_rules=lambda: rules, models=lambda: {"offer:gold_card": model})

    def raised(cid: str, attributes: dict) -> list[dict]:
        evs = [{"event_id": f"{cid}-a", "type": "profile", "ts": T0, "customer_id": cid,
                "attributes": attributes}, buy(cid, T0 + 60, 1)]
        _, out = process_batch(None, evs, ctx)
        return [o[1] for o in out if o[0] == "alert" and o[1]["type"] == "opportunity"]

    hit = raised("vip1", {"vip": True})
    assert [a["data"]["rule"] for a in hit] == ["card_likely"]
    assert raised("plain1", {"vip": False}) == []
    assert raised("has_card", {"vip": True, "gold_card": True}) == []


def test_no_stopped_buying_alert_within_the_customers_own_rhythm() -> None:
    """Population parameters fitted on a cohort of bursts put p_alive at 17% the moment a
    customer buys: "may have stopped buying ... after 0 days without a purchase". The alert now
    waits until the customer has been silent longer than their own usual gap (10 days here)."""
    bursty = {"bgnbd": {"r": 0.5, "alpha": 2.0, "a": 10.0, "b": 1.0}}
    ctx = Context(alert_rules=lambda: RULES, value_params=lambda: bursty)

    def p_alive_alerts(out: list) -> list:
        return [o[1] for o in out if o[0] == "alert" and o[1]["data"].get("signal") == "p_alive"]

    c, out = process_batch(None, [buy("rh", T0 + d * DAY, d, 60.0) for d in (0, 10, 20)], ctx)
    assert p_alive_alerts(out) == []
    c, out = process_batch(c, [{"event_id": "rh-k", "type": "click", "ts": T0 + 25 * DAY,
                                "customer_id": "rh"}], ctx)
    assert p_alive_alerts(out) == []  # 5 days: within their rhythm
    c, out = process_batch(c, [{"event_id": "rh-t", "type": "tick", "ts": T0 + 31 * DAY,
                                "customer_id": "rh", "_internal": True}], ctx)
    (alert,) = p_alive_alerts(out)
    assert "after 11 days without a purchase" in alert["reasons"][0]
