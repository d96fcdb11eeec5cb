"""Privacy: erasure leaves no trace in Redis; consent withdrawal holds on the very next decision."""

from __future__ import annotations

import orjson
import redis

from engine import store
from tests.conftest import ev, get_json

T0 = 1_767_225_600.0
WHO, ANON = "erase-me-7731", "anon-erase-7731"


def everything_in(r: redis.Redis) -> bytes:
    """Every key and value in Redis, as one blob to search."""
    out = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        out.append(key)
        if kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"hash":
            out += [k + v for k, v in r.hgetall(key).items()]
        elif kind == b"set":
            out += list(r.smembers(key))
        elif kind == b"zset":
            out += r.zrange(key, 0, -1)
        elif kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"stream":
            out += [b"".join(k + v for k, v in f.items()) for _, f in r.xrange(key)]
    return b"\n".join(out)


def test_erasure_removes_every_trace(api, flow, r) -> None:
    events = [
        ev("x1", "click", T0, None, anonymous_id=ANON, category="travel", action="product_view"),
        ev("x2", "identify", T0 + 1, WHO, anonymous_id=ANON),
        ev("x3", "consent", T0 + 2, WHO, purpose="marketing", granted=True),
        ev("x4", "profile", T0 + 3, WHO, owner="rep1", attributes={"email": "me@example.com"}),
        ev("x5", "transaction", T0 + 4, WHO, amount=99.0, items=[{"category": "travel"}]),
        ev("x6", "call", T0 + 5, WHO, reason="complaint", sentiment=-0.8),
        ev("k1", "transaction", T0 + 6, "keep-me", amount=10.0),
        {"event_id": "bad1", "type": "transaction", "ts": T0, "customer_id": WHO, "amount": -1},
    ]
    assert api.post("/v1/events", json=events[:1]).status_code == 202
    flow.drain()  # an offer to the visitor before they sign in: kept under their anonymous id
    assert api.post("/v1/decisions", json={"anonymous_id": ANON, "channel": "web"}).status_code == 200
    assert api.post("/v1/events", json=events[1:]).status_code == 202
    flow.drain()
    d = api.post("/v1/decisions", json={"customer_id": WHO, "channel": "web"}).json()
    api.post(f"/v1/decisions/{d['decision_id']}/feedback",
             json={"offer_id": "city_break", "outcome": "rejected"})
    r.xadd(store.ALERTS, {"a": store.encode({"alert_id": "a-erase", "type": "churn_risk",
                                             "customer_id": WHO, "owner": "rep1", "ts": T0})})
    flow.drain()
    assert WHO.encode() in everything_in(r)

    res = api.delete(f"/v1/customers/{WHO}")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["found"] and body["events_removed"] >= 6 and body["alerts_removed"] == 1
    flow.drain()
    blob = everything_in(r)
    for trace in (WHO.encode(), ANON.encode(), b"me@example.com"):
        assert trace not in blob, blob[max(0, blob.find(trace) - 200): blob.find(trace) + 100]
    assert api.get(f"/v1/customers/{WHO}").status_code == 404
    assert get_json(api, "/v1/customers/keep-me")["features"]["total_spend"] == 10.0


def test_consent_withdrawal_holds_on_the_next_decision(api, flow) -> None:
    events = [ev("c1", "consent", T0, "cw", purpose="marketing", granted=True),
              ev("c2", "transaction", T0 + 1, "cw", amount=500.0)]
    api.post("/v1/events", json=events)
    flow.drain()
    kinds = {o["kind"] for o in api.post("/v1/decisions", json={
        "customer_id": "cw", "channel": "web", "limit": 5}).json()["offers"]}
    assert "offer" in kinds
    api.post("/v1/events", json=[ev("c3", "consent", T0 + 2, "cw", purpose="marketing", granted=False)])
    # no waiting for the flow: the very next decision respects the withdrawal
    offers = api.post("/v1/decisions", json={"customer_id": "cw", "channel": "web", "limit": 5}).json()["offers"]
    assert all(o["kind"] != "offer" for o in offers), offers
    flow.drain()
    assert get_json(api, "/v1/customers/cw")["consent"]["marketing"] is False


def test_erasing_events_the_flow_has_not_read_leaves_nothing_pending(api, settings, r) -> None:
    """Erasure deletes the customer's raw events from the streams, read by the flow or not: the
    pending count (ingested - processed) must still reach 0 once the flow catches up."""
    from tests.conftest import FlowProcess

    api.post("/v1/events", json=[ev(f"u{i}", "click", T0 + i, WHO, page="/p") for i in range(5)]
             + [ev("k2", "transaction", T0 + 9, "keep-me-too", amount=12.0)])
    assert api.delete(f"/v1/customers/{WHO}").json()["events_removed"] == 5  # none read yet
    proc = FlowProcess(settings)
    try:
        proc.drain(timeout=60)  # the erase record and keep-me-too's event are all that is left
        assert get_json(api, "/v1/customers/keep-me-too")["features"]["total_spend"] == 12.0
        assert api.get(f"/v1/customers/{WHO}").status_code == 404
    finally:
        proc.stop()


def test_erasure_deletes_every_decision_not_only_the_latest(api, flow, r) -> None:
    """Each decision leaves a key naming its customer (for feedback, 30 days): erasure deletes
    all of them, however many; the flow only remembers a customer's latest 20."""
    api.post("/v1/events", json=[ev("m1", "transaction", T0, "many-decisions", amount=50.0)])
    flow.drain()
    ids = [api.post("/v1/decisions", json={"customer_id": "many-decisions"}).json()["decision_id"]
           for _ in range(30)]
    flow.drain()
    assert all(r.get(store.decision(d)) == b"many-decisions" for d in ids)
    assert api.delete("/v1/customers/many-decisions").status_code == 200
    flow.drain()
    assert not any(r.exists(store.decision(d)) for d in ids)
    assert b"many-decisions" not in everything_in(r)


def test_an_erased_customers_devices_start_afresh(api, flow) -> None:
    """Erasure unlinks the customer's anonymous ids in the flow: the next click on their device
    is a new visitor's, not the erased customer's back. A visitor erased by their cookie id
    takes what was kept for merging with them: a later sign-in merges nothing."""
    clicks = [ev(f"v{i}", "click", T0 + i, None, anonymous_id="dev-1", page="/p") for i in range(3)]
    api.post("/v1/events", json=[*clicks, ev("v3", "identify", T0 + 5, "gone-1", anonymous_id="dev-1")])
    api.post("/v1/events", json=[ev(f"w{i}", "click", T0 + i, None, anonymous_id="dev-2", page="/q")
                                 for i in range(3)])
    flow.drain()
    assert get_json(api, "/v1/customers/gone-1")["features"]["click_count_1d"] == 3
    assert api.delete("/v1/customers/gone-1").json()["found"]
    erased = api.delete("/v1/customers/dev-2").json()  # the visitor, by their cookie id
    assert erased["found"] and erased["erased"] == "anon:dev-2" and erased["events_removed"] == 3
    flow.drain()
    api.post("/v1/events", json=[ev("v9", "click", T0 + 60, None, anonymous_id="dev-1", page="/r"),
                                 ev("w9", "identify", T0 + 60, "new-2", anonymous_id="dev-2")])
    flow.drain()
    assert api.get("/v1/customers/gone-1").status_code == 404
    assert get_json(api, "/v1/customers/anon:dev-1")["features"]["click_count_1d"] == 1
    assert get_json(api, "/v1/customers/new-2")["features"].get("click_count_1d", 0) == 0


def test_erasure_finds_dead_letters_however_they_named_the_customer(api, flow, r) -> None:
    """A dead letter keeps what was sent: a customer id as a number (17850.0 is "17850") is
    the customer's, and one sent as a list (no one's) does not stop the erasure."""
    bad = [{"event_id": "d1", "type": "click", "ts": "yesterday", "customer_id": 17850.0},
           {"event_id": "d2", "type": "transaction", "ts": T0, "customer_id": 17850, "amount": -3},
           {"event_id": "d3", "type": "click", "ts": T0, "customer_id": ["17850"]}]
    api.post("/v1/events", json=[*bad, ev("g1", "transaction", T0, "17850", amount=5.0)])
    flow.drain()
    res = api.delete("/v1/customers/17850")
    assert res.status_code == 200, res.text
    assert res.json()["dead_letters_removed"] == 2
    assert [orjson.loads(f[b"raw"])["event_id"] for _, f in r.xrange(store.DLQ)] == ["d3"]
