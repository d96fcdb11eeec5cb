"""The closed loop end to end: real Redis, the real flow process, the real API app."""

from __future__ import annotations

import random

from tests.conftest import ev, get_json, wait_for

T0 = 1_767_225_600.0


def consented(cid: str, ts: float) -> list[dict]:
    return [ev(f"{cid}-consent", "consent", ts, cid, purpose="marketing", granted=True),
            ev(f"{cid}-profile", "profile", ts, cid, owner="rep7", attributes={"plan": "plus"})]


def test_feedback_moves_the_propensity_of_the_served_offer(api, flow):
    customers = [f"c{i}" for i in range(31)]  # the contact policy caps offers per customer
    events = []
    for cid in customers:
        events += consented(cid, T0) + [
            ev(f"{cid}-v{i}", "click", T0 + i, cid, action="product_view", category="electronics")
            for i in range(5)]
    res = api.post("/v1/events", json=events)
    assert res.status_code == 202, res.text
    assert res.json()["accepted"] == len(events)
    flow.drain()
    body = {"channel": "web", "offers": ["headphones_promo"]}
    first = api.post("/v1/decisions", json={**body, "customer_id": "c30"}).json()
    assert [o["offer_id"] for o in first["offers"]] == ["headphones_promo"]
    before = first["offers"][0]["propensity"]
    accepted = 0
    for cid in customers[:30]:
        d = api.post("/v1/decisions", json={**body, "customer_id": cid}).json()
        if not d["offers"]:
            continue  # this customer is in the offer's control group
        res = api.post(f"/v1/decisions/{d['decision_id']}/feedback",
                       json={"offer_id": "headphones_promo", "outcome": "accepted", "value": 25})
        assert res.status_code == 202, res.text
        accepted += 1
    assert accepted >= 20
    flow.drain()
    # the API reloads models within a quarter second of a notice (tests/test_model_reload.py);
    # reading /v1/models reloads at once, so the next decision cannot race the reload (a stale
    # decision would count against c30's contact cap)
    assert api.get("/v1/models").status_code == 200

    def moved():
        d = api.post("/v1/decisions", json={**body, "customer_id": "c30", "channel": "call_center"}).json()
        p = d["offers"][0]["propensity"] if d["offers"] else None
        return p if p is not None and p > before + 0.05 else None

    after = wait_for(moved, timeout=15)
    assert after > before
    perf = get_json(api, "/v1/offers/headphones_promo/performance")
    assert perf["accepted"] == accepted and perf["impressions"] >= accepted + 1
    models = {m["name"]: m for m in get_json(api, "/v1/models")["models"]}
    assert models["offer:headphones_promo"]["examples"] == accepted


def test_malformed_events_go_to_dead_letter_while_good_ones_are_processed(api, flow, r):
    batch = [
        ev("g1", "click", T0, "c9", action="search", query="tv", category="electronics"),
        {"event_id": "b1", "type": "teleport", "ts": T0, "customer_id": "c9"},
        ev("b2", "transaction", T0, "c9", amount=-3),
        ev("b3", "call", "not a time", "c9"),
        ev("g2", "transaction", T0 + 60, "c9", amount=42.5, kind="purchase"),
        "just a string",
    ]
    res = api.post("/v1/events", json=batch)
    assert res.status_code == 202
    out = res.json()
    assert out["accepted"] == 2
    assert [x["index"] for x in out["rejected"]] == [1, 2, 3, 5]
    assert "amount" in out["rejected"][1]["error"]
    flow.drain()
    dead = r.xrange("nb:dlq")
    reasons = [f[b"reason"].decode() for _, f in dead]
    assert len(dead) == 4 and any("teleport" in x for x in reasons)
    assert any(b"b2" in f[b"raw"] for _, f in dead)
    profile = get_json(api, "/v1/customers/c9")
    assert profile["features"]["purchases"] == 1
    assert profile["features"]["total_spend"] == 42.5
    assert profile["features"]["click_count_90d"] == 1
    assert "nextbest_events_total" in api.get("/metrics").text
    assert get_json(api, "/v1/status")["deadlettered"] == 4


def test_churn_alert_reaches_the_owner(api, flow):
    rng = random.Random(3)
    events = []
    for i in range(260):
        cid = f"p{i}"
        churns = i % 5 == 0
        events.append(ev(f"{cid}-o", "profile", T0, cid, owner="rep1"))
        for k in range(3 if churns else 1):
            events.append(ev(f"{cid}-call{k}", "call", T0 + 10 + k, cid,
                             reason="complaint" if churns else "billing",
                             sentiment=round(rng.uniform(-1, -0.5) if churns else rng.uniform(0, 1), 2),
                             outcome="unresolved" if churns else "resolved"))
        events.append(ev(f"{cid}-out", "outcome", T0 + 100, cid, name="churned", value=churns))
    for i in range(0, len(events), 500):
        assert api.post("/v1/events", json=events[i:i + 500]).status_code == 202
    flow.drain()
    # a new unhappy customer of rep9: the learned churn model flags them
    unhappy = [ev("u-o", "profile", T0 + 200, "unhappy", owner="rep9")] + [
        ev(f"u-call{k}", "call", T0 + 300 + k, "unhappy", reason="complaint", sentiment=-0.9,
           outcome="unresolved") for k in range(4)]

    def alerted():
        api.post("/v1/events", json=unhappy)  # duplicates are ignored; new ids below advance
        unhappy.append(ev(f"u-call{len(unhappy)}", "call", T0 + 400 + len(unhappy), "unhappy",
                          reason="complaint", sentiment=-0.95, outcome="escalated"))
        found = get_json(api, "/v1/alerts", params={"owner": "rep9"})["alerts"]
        return [a for a in found if a["type"] == "churn_risk"]

    alerts = wait_for(alerted, timeout=40, every=0.5)
    a = alerts[0]  # (a service-sentiment drift alert may be raised beside it)
    assert a["customer_id"] == "unhappy" and a["owner"] == "rep9"
    assert a["reasons"] and a["score"] >= 0.6 and a["status"] == "open"
    assert get_json(api, "/v1/customers/unhappy")["scores"]["churn_risk"] >= 0.6
    acked = api.post(f"/v1/alerts/{a['alert_id']}/ack")
    assert acked.status_code == 200
    after = get_json(api, "/v1/alerts", params={"owner": "rep9", "type": "churn_risk"})["alerts"]
    assert [x["status"] for x in after if x["alert_id"] == a["alert_id"]] == ["acked"]
