"""Identity: anonymous clicks recorded before `identify` are merged into the customer (nothing
twice, nothing lost), later ones are attributed directly, a customer can have several anonymous
ids, and decisions asked for with only an anonymous id use the linked customer."""

from __future__ import annotations

from typing import Any

import orjson

from engine import store
from engine.customer import Context, Customer, process_batch
from engine.identity import Anonymous, resolve
from flows.sink import _Writer
from tests.conftest import ev, get_json, serve, wait_for

T0 = 1_767_225_600.0


def click(eid: str, ts: float, anon: str, cid: str | None = None, **kw: Any) -> dict[str, Any]:
    return ev(eid, "click", ts, cid, anonymous_id=anon, action="product_view",
              category=kw.pop("category", "travel"), **kw)


def identify(eid: str, ts: float, anon: str, cid: str) -> dict[str, Any]:
    return ev(eid, "identify", ts, cid, anonymous_id=anon)


class MiniFlow:
    """The flow's routing in miniature: identity keyed by anonymous id, then the customer step."""

    def __init__(self) -> None:
        self.anon: dict[str, Anonymous] = {}
        self.customers: dict[str, Customer | None] = {}
        self.links: dict[str, str] = {}

    def send(self, event: dict[str, Any]) -> None:
        routed = [event]
        if event["type"] == "identify" or "customer_id" not in event:
            state, out = resolve(self.anon.get(event["anonymous_id"]), event)
            self.anon[event["anonymous_id"]] = state
            self.links.update({o[1]: o[2] for o in out if o[0] == "link"})
            routed = [o[1] for o in out if o[0] == "event"]
        for e in routed:
            cid = e["customer_id"]
            self.customers[cid], _ = process_batch(self.customers.get(cid), [e], Context())

    def features(self, cid: str) -> dict[str, Any]:
        c = self.customers.get(cid)
        assert c is not None, cid
        return c.state.features()


def test_identify_merges_earlier_clicks_once_and_later_ones_go_straight_to_the_customer():
    m = MiniFlow()
    for i in range(4):
        m.send(click(f"a{i}", T0 + i, "cookie1"))
    assert m.features("anon:cookie1")["click_count_1h"] == 4
    m.send(ev("buy", "transaction", T0 + 10, "c1", amount=20.0))
    m.send(identify("id1", T0 + 20, "cookie1", "c1"))
    assert m.customers["anon:cookie1"] is None  # the pseudo-customer is gone
    assert m.links == {"cookie1": "c1"}
    m.send(click("a9", T0 + 30, "cookie1"))          # later: attributed directly
    m.send(identify("id1-again", T0 + 40, "cookie1", "c1"))  # a repeated identify: no re-merge
    m.send(click("a0", T0 + 0, "cookie1"))           # a redelivered early click: a duplicate
    f = m.features("c1")
    assert f["click_count_1h"] == 5 and f["purchases"] == 1
    assert m.customers["c1"].state.anonymous_ids == {"cookie1"}
    assert "anon:cookie1" not in {k for k, v in m.customers.items() if v is not None}


def test_several_anonymous_ids_merge_into_one_customer():
    m = MiniFlow()
    for anon, n in (("phone", 3), ("laptop", 2)):
        for i in range(n):
            m.send(click(f"{anon}{i}", T0 + i, anon, category=anon))
    m.send(identify("i1", T0 + 100, "phone", "c7"))
    m.send(identify("i2", T0 + 50, "laptop", "c7"))  # identified earlier in event time
    f = m.features("c7")
    assert f["click_count_1h"] == 5 and f["interest_phone"] > f["interest_laptop"] > 0
    assert m.customers["c7"].state.anonymous_ids == {"phone", "laptop"}


def test_through_the_flow_and_api(api, flow, r):
    events = [click(f"k{i}", T0 + i, "ck-1") for i in range(5)]
    events += [click(f"m{i}", T0 + 10 + i, "ck-2", category="home") for i in range(3)]
    events += [ev("own", "transaction", T0 + 20, "cust", amount=99.0)]
    res = api.post("/v1/events", json=events)
    assert res.json()["accepted"] == len(events)
    flow.drain()
    assert get_json(api, "/v1/customers/anon:ck-1")["features"]["click_count_1h"] == 5
    anon_decision = api.post("/v1/decisions", json={"anonymous_id": "ck-1", "channel": "web"})
    assert anon_decision.json()["customer_id"] == "anon:ck-1"

    links = [identify("link1", T0 + 30, "ck-1", "cust"), identify("link2", T0 + 31, "ck-2", "cust")]
    later = [click("k9", T0 + 40, "ck-1"),                    # anonymous only, after identify
             click("k10", T0 + 41, "ck-2", cid="cust")]      # both ids
    assert api.post("/v1/events", json=links).json()["accepted"] == 2
    assert api.post("/v1/events", json=later).json()["accepted"] == 2
    again = api.post("/v1/events", json=events[:3] + links).json()  # redelivered: duplicates
    assert again["duplicates"] == 5
    flow.drain()

    profile = get_json(api, "/v1/customers/cust")
    f = profile["features"]
    assert f["click_count_1h"] == 5 + 3 + 2  # each click exactly once
    assert f["purchases"] == 1 and f["interest_travel"] > 0 and f["interest_home"] > 0
    assert sorted(profile["anonymous_ids"]) == ["ck-1", "ck-2"]
    assert api.get("/v1/customers/anon:ck-1").status_code == 404  # merged, then forgotten
    assert r.get(store.anon("ck-1")) == b"cust" and r.get(store.anon("ck-2")) == b"cust"
    assert store.customer("anon:ck-2").encode() not in set(r.keys("nb:c:*"))

    for anon in ("ck-1", "ck-2"):
        d = api.post("/v1/decisions", json={"anonymous_id": anon, "channel": "web"})
        assert d.status_code == 200 and d.json()["customer_id"] == "cust"
    unknown = api.post("/v1/decisions", json={"anonymous_id": "never-seen", "channel": "web"})
    assert unknown.json()["customer_id"] == "anon:never-seen"


def test_a_shared_device_means_whoever_signed_in_last_in_event_time_in_any_arrival_order():
    """Bob signs in on Alice's tablet. Before, the identify that arrived last held the link,
    so Alice's sign-in replayed late took the device back from Bob."""
    orders = {"in order": ["alice", "bob"], "late": ["bob", "alice"]}
    for name, order in orders.items():
        m = MiniFlow()
        m.send(click("a1", T0, "tablet"))
        for who in order:
            m.send(identify(f"i-{who}", T0 + (10 if who == "alice" else 30), "tablet", who))
        m.send(click("a3", T0 + 40, "tablet"))
        assert m.links == {"tablet": "bob"}, name
        assert m.features("bob")["click_count_1h"] == 1 + (name == "late"), name
        assert "tablet" in m.customers["alice"].state.anonymous_ids, name


def test_a_merged_anonymous_history_is_not_counted_again_nor_late_by_the_source_monitor():
    """A visitor browses for two days, then signs in: their clicks reach the customer after the
    identify, days older than it. The source monitor counted them as the web's late events (a
    false "late events spiked" alert on a replayed clickstream sorted by time), and twice."""
    from engine.sourcedrift import tally

    state, counted = None, {}
    for i in range(10):
        state, out = resolve(state, click(f"v{i}", T0 + i * 5 * 3600, "visitor", channel="web"))
        for src, n in tally([o[1] for o in out], None, 3600.0).items():
            counted[src] = [a + b for a, b in zip(counted.get(src, [0, 0, 0]), n)]
    state, out = resolve(state, identify("in", T0 + 50 * 3600, "visitor", "c9"))
    to_customer = [o[1] for o in out if o[0] == "event" and o[1]["customer_id"] == "c9"]
    assert len(to_customer) == 11  # the identify and the ten clicks, merged
    assert tally(to_customer, None, 3600.0) == {"unknown": [1, 0, 0]}  # the identify alone
    assert counted == {"web": [10, 0, 0]}  # each click counted once, when it arrived


def test_an_offer_made_to_a_visitor_and_taken_after_signing_in_counts_as_the_engines(
        api, flow, settings):
    """"Sign in to claim your offer": the decision was the visitor's (anon:<id>); its answer came
    after identify. The answer went to a pseudo-customer since forgotten (written back as a
    profile of its own) and counted as feedback to an offer made elsewhere; the offer's
    acceptance rate lost every sign-in conversion. The visitor's open decisions now go with
    them to the customer, and the API sends the answer there."""
    settings.control_share = 0.0
    api.post("/v1/events", json=[click("s1", T0, "ck-9")])
    flow.drain()
    d = serve(api, flow, {"anonymous_id": "ck-9"}, "garden_sale", {"consent": {"marketing": True}})
    assert d["customer_id"] == "anon:ck-9"
    api.post("/v1/events", json=[identify("s2", T0 + 60, "ck-9", "claimer")])
    flow.drain()
    assert api.post(f"/v1/decisions/{d['decision_id']}/feedback",
                    json={"offer_id": "garden_sale", "outcome": "accepted"}).status_code == 202
    flow.drain()

    def performance() -> dict:
        return get_json(api, "/v1/offers/garden_sale/performance")

    perf = wait_for(lambda: performance()["accepted"] and performance(), timeout=15)
    assert (perf["impressions"], perf["accepted"], perf["external_feedback"]["responses"]) == (1, 1, 0)
    assert api.get("/v1/customers/anon:ck-9").status_code == 404  # not written back


def test_a_visitors_open_decisions_are_handed_to_the_customer_once():
    ctx, x = Context(), {"clicks": 2.0}
    anon, _ = process_batch(None, [click("h1", T0, "ck-3", "anon:ck-3")], ctx)
    anon, _ = process_batch(anon, [
        ev("hs", "decision", T0 + 1, "anon:ck-3", decision_id="DS", offers=["o"], x=x),
        ev("hf", "feedback", T0 + 2, "anon:ck-3", decision_id="DS", offer_id="o",
           outcome="accepted"),  # answered while a visitor
        ev("hd", "decision", T0 + 3, "anon:ck-3", decision_id="DV", offers=["o"], x=x)], ctx)
    gone, out = process_batch(anon, [{"type": "forget", "_internal": True, "ts": T0 + 5,
                                      "customer_id": "anon:ck-3", "event_id": "forget:ck-3",
                                      "into": "cust3"}], ctx)
    assert gone is None and [o[0] for o in out] == ["adopt", "forget", "summary"]
    _, into, given, ts, visitor = out[0]
    assert (into, ts, visitor) == ("cust3", T0 + 5, "anon:ck-3")
    assert [d["decision_id"] for d in given["decisions"]] == ["DV"] and len(given["settled"]) == 2  # DS, and its answer
    record = {"type": "adopt", "_internal": True, "customer_id": "cust3", "ts": ts,
              "event_id": "adopt:anon:ck-3", **given}
    cust, _ = process_batch(None, [ev("c1", "transaction", T0 + 2, "cust3", amount=5.0),
                                   ev("cd", "decision", T0 + 4, "cust3", decision_id="DC",
                                      offers=["o"], x=x), record,
                                   dict(record)], ctx)  # a redelivery changes nothing
    assert list(cust.pending) == ["DV", "DC"]  # oldest first: the bound lets the oldest go
    cust, out = process_batch(cust, [ev("fb", "feedback", T0 + 9, "cust3", decision_id="DV",
                                        offer_id="o", outcome="accepted")], ctx)
    assert ("example", "offer:o", x, True, T0 + 9, {}) in out  # learned with the decision's inputs
    cust, out = process_batch(cust, [ev("fb2", "feedback", T0 + 9, "cust3", decision_id="DS",
                                        offer_id="o", outcome="accepted")], ctx)
    assert not [o for o in out if o[0] == "example"]  # answered as a visitor: not learned twice


def test_an_offer_the_visitor_rejected_is_not_offered_again_once_they_sign_in(api, flow, settings,
                                                                              r):
    """One voice across the sign-in: the visitor's contact history (shown, rejected) was kept
    under their anonymous id, so the customer they became was offered the rejected offer again
    at once, and the day's caps started afresh."""
    settings.control_share = 0.0
    consent = {"consent": {"marketing": True}}
    api.post("/v1/events", json=[click("r1", T0, "ck-5")])
    flow.drain()
    d = serve(api, flow, {"anonymous_id": "ck-5"}, "garden_sale", consent)
    api.post(f"/v1/decisions/{d['decision_id']}/feedback",
             json={"offer_id": "garden_sale", "outcome": "rejected"})
    api.post("/v1/events", json=[identify("r2", T0 + 60, "ck-5", "signed")])
    flow.drain()
    again = api.post("/v1/decisions", json={"customer_id": "signed", "channel": "web",
                                            "context": consent, "offers": ["garden_sale"]}).json()
    assert again["offers"] == [] and again["excluded"] == {"rejected recently": 1}
    assert not r.exists(store.contact("anon:ck-5"))  # merged into the customer's, then gone


def test_every_sign_in_of_a_batch_merges_its_contact_history(redis_url, r):
    """The sink reads the batch's sign-ins in one round trip: two visitors of one customer in the
    same batch both join the customer's history (the second merge builds on the first), and a
    visitor who was shown nothing changes nothing."""
    w = _Writer(redis_url, 1000, 1000, (2, 3600, 10_000))
    r.hset(store.contact("anon:a"), mapping={"imp": '[[1.0,"web","offer","x"]]', "rej:x": "1"})
    r.hset(store.contact("anon:b"), mapping={"imp": '[[3.0,"app","offer","y"]]', "acc:y": "3"})
    r.expire(store.contact("anon:b"), 500)
    r.hset(store.contact("me"), mapping={"imp": '[[2.0,"web","offer","z"]]'})
    w.write_batch([("forget", "anon:a", "me"), ("forget", "anon:none", "me"),
                   ("forget", "anon:b", "me")])
    got = r.hgetall(store.contact("me"))
    assert [i[3] for i in orjson.loads(got[b"imp"])] == ["x", "z", "y"]
    assert got[b"rej:x"] == b"1" and got[b"acc:y"] == b"3"
    assert 0 < r.ttl(store.contact("me")) <= 500
    assert not r.exists(store.contact("anon:a")) and not r.exists(store.contact("anon:b"))
