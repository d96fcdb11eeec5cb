"""Customer features in event time: the same values whatever the arrival order (live, replayed,
shuffled within the lateness bound, or shuffled entirely), each building block against a brute
force, and what a very late event does."""

from __future__ import annotations

import pickle
import random
import time
from typing import Any

import pytest

from engine.customer import Context, process_batch
from engine.features import CustomerState
from engine.featureset import DAY, FEATURES, compact, expand
from engine.sessions import GAP, Sessions
from engine.windows import WINDOWS, Windowed

T0 = 1_767_225_600.0
CATS = ("home", "travel", "sports")


def rich_events(rng: random.Random, cid: str = "c1", n: int = 400, span_days: float = 60.0,
                ) -> list[dict[str, Any]]:
    """Every kind of event the features read, spread over `span_days`."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        ts = round(T0 + rng.uniform(0, span_days) * DAY, 1)
        e: dict[str, Any] = {"event_id": f"{cid}-{i}", "ts": ts, "customer_id": cid}
        roll = rng.random()
        cat, product = rng.choice(CATS), f"p{rng.randint(1, 6)}"
        if roll < 0.55:
            action = rng.choice(["page_view", "product_view", "search", "add_to_cart",
                                 "remove_from_cart", "checkout", "offer_view"])
            e.update(type="click", action=action, category=cat, product_id=product,
                     price=round(rng.uniform(1, 90), 2))
            if rng.random() < 0.5:
                e["session_id"] = f"s{int(ts // 5400)}"
        elif roll < 0.7:
            kind = rng.choice(["purchase", "purchase", "refund", "payment"])
            e.update(type="transaction", kind=kind, amount=round(rng.uniform(1, 300), 2),
                     items=[{"product_id": product, "category": cat, "quantity": 1}])
        elif roll < 0.82:
            e.update(type="call", reason=rng.choice(["billing", "complaint", "tech_support"]),
                     outcome=rng.choice(["resolved", "unresolved", "escalated", "callback"]),
                     sentiment=round(rng.uniform(-1, 1), 3), duration_s=120.0)
        elif roll < 0.92:
            e.update(type="profile", attributes={"plan": rng.choice(["a", "b", None]),
                                                 "age": rng.randint(18, 80)},
                     owner=rng.choice(["rep1", "rep2"]))
        else:
            e.update(type="consent", purpose="marketing", granted=rng.random() < 0.5)
        out.append(e)
    return out


def state_of(events: list[dict[str, Any]], lateness: float = 3600.0) -> CustomerState:
    st = CustomerState("c1", lateness)
    for e in events:
        if st.first_time(e["event_id"]):
            st.update(e)
        st.features()  # read after every event, as the flow does: reads must not change state
    return st


def view(st: CustomerState) -> dict[str, Any]:
    return {"f": st.features(), "stored": st.stored(), "a": st.attributes, "c": st.consent,
            "o": st.owner, "r": st.recent, "t": st.last_ts}


def within_lateness(events: list[dict[str, Any]], rng: random.Random,
                    lateness: float) -> list[dict[str, Any]]:
    """An arrival order in which no event comes more than `lateness` after a later one."""
    return sorted(events, key=lambda e: e["ts"] + rng.uniform(0, lateness))


@pytest.mark.parametrize("seed", range(4))
def test_shuffled_within_lateness_gives_identical_features(seed: int) -> None:
    rng = random.Random(seed)
    events = rich_events(rng, span_days=0.5 if seed % 2 else 60)  # dense and sparse
    in_order = view(state_of(sorted(events, key=lambda e: e["ts"])))
    late = within_lateness(events, rng, 3600.0)
    assert late != sorted(events, key=lambda e: e["ts"])
    assert view(state_of(late)) == in_order
    assert in_order["f"]["sessions_30d"] > 0 and in_order["f"]["purchases"] > 0


@pytest.mark.parametrize("seed", range(3))
def test_any_arrival_order_gives_identical_features(seed: int) -> None:
    rng = random.Random(100 + seed)
    events = rich_events(rng)
    in_order = view(state_of(sorted(events, key=lambda e: e["ts"])))
    shuffled = events[:]
    rng.shuffle(shuffled)
    assert view(state_of(shuffled)) == in_order


def test_replay_of_the_same_events_is_identical_and_duplicates_change_nothing() -> None:
    events = rich_events(random.Random(7))
    once = view(state_of(events))
    assert view(state_of(events)) == once
    twice = events + random.Random(8).sample(events, 150)
    assert view(state_of(twice)) == once


def test_very_late_event_counts_in_lifetime_totals_only() -> None:
    on_time = [{"event_id": f"c{i}", "type": "click", "ts": T0 + 100 * DAY + i * 60,
                "action": "product_view", "category": "home"} for i in range(5)]
    old = [{"event_id": "old-buy", "type": "transaction", "ts": T0, "amount": 50.0,
            "items": [{"category": "travel", "quantity": 2}]},
           {"event_id": "old-click", "type": "click", "ts": T0 + 60, "action": "add_to_cart",
            "product_id": "p1", "price": 9.0}]
    late = state_of(on_time + old)  # 100 days late: far beyond any lateness bound
    f = late.features()
    assert f["purchases"] == 1 and f["total_spend"] == 50.0 and f["bought_travel"] == 2
    assert f["purchase_count_90d"] == 0 and f["carted_not_bought"] == 0
    assert f["sessions_30d"] == 1 and f["click_count_90d"] == 5
    assert view(late) == view(state_of(old + on_time))  # the same as in order


def test_windows_match_a_brute_force_in_any_order() -> None:
    rng = random.Random(3)
    events = [(T0 + rng.uniform(0, 100 * DAY), round(rng.uniform(0, 50), 2)) for _ in range(600)]
    w = Windowed()
    clock = T0
    for ts, amount in events:  # arrival in random order, reading as the clock advances
        w.add(ts, amount)
        clock = max(clock, ts)
        w.sums_at(clock)
    for now in [clock] + sorted(clock + rng.uniform(0, 100 * DAY) for _ in range(30)):
        for name, (length, grain) in WINDOWS.items():
            last = now // grain
            inside = [a for ts, a in events if last - length // grain < ts // grain <= last]
            count, amount = w.get(name, now)
            assert count == len(inside), (name, now)
            assert amount == pytest.approx(sum(inside), abs=1e-6)


def brute_sessions(stamps: list[float]) -> list[list[float]]:
    runs: list[list[float]] = []
    for ts in sorted(stamps):
        if runs and ts - runs[-1][1] <= GAP:
            runs[-1][1], runs[-1][2] = ts, runs[-1][2] + 1
        else:
            runs.append([ts, ts, 1])
    return runs


@pytest.mark.parametrize("seed", range(5))
def test_sessions_match_a_brute_force_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    stamps = [float(round(rng.uniform(0, 3 * DAY))) for _ in range(300)]
    s = Sessions()
    for ts in stamps:
        s.add(ts)
        s.summary(max(stamps))
    assert s.gap_runs == brute_sessions(stamps)
    now = 3 * DAY
    runs = brute_sessions(stamps)
    counts, length, clicks, last = s.summary(now)
    recent = [r for r in runs if r[0] > now - DAY]
    assert counts == (len(recent), len(runs), len(runs))
    assert length == pytest.approx(sum(r[1] - r[0] for r in runs) / len(runs))
    assert clicks == pytest.approx(300 / len(runs)) and last == runs[-1][1] - runs[-1][0]


def test_session_and_cart_features() -> None:
    t = T0 + 10 * DAY
    events = [
        {"event_id": "1", "type": "click", "ts": t, "action": "page_view"},
        {"event_id": "2", "type": "click", "ts": t + 600, "action": "add_to_cart",
         "product_id": "a", "price": 20.0, "category": "home"},
        {"event_id": "3", "type": "click", "ts": t + 900, "action": "add_to_cart",
         "product_id": "b", "price": 5.5},
        {"event_id": "4", "type": "click", "ts": t + 4000, "action": "remove_from_cart",
         "product_id": "b", "session_id": "x"},
        {"event_id": "5", "type": "click", "ts": t + 4100, "action": "search", "session_id": "x"},
    ]
    st = state_of(events)
    f = st.features()
    assert (f["sessions_1d"], f["session_length_avg_30d"], f["session_clicks_avg_30d"]) == \
        (2, 500.0, 2.5)
    assert f["session_length_last"] == 100.0
    assert (f["carted_not_bought"], f["cart_value"], f["cart_abandoned"]) == (1, 20.0, 0)
    later = st.features(t + 4100 + GAP + 1)  # no click for over 30 min: abandoned
    assert later["cart_abandoned"] == 1 and later["days_since_add_to_cart"] > 0
    st.update({"event_id": "6", "type": "transaction", "ts": t + 5000, "amount": 20.0,
               "items": [{"product_id": "a", "category": "home", "quantity": 1}]})
    f = st.features()
    assert f["carted_not_bought"] == 0 and f["bought_home"] == 1 and f["categories_bought"] == 1
    assert st.features(t + 40 * DAY)["sessions_30d"] == 0


def test_service_commerce_and_profile_features() -> None:
    t = T0
    events = [
        {"event_id": "1", "type": "call", "ts": t, "reason": "complaint", "outcome": "resolved",
         "sentiment": 0.5},
        {"event_id": "2", "type": "call", "ts": t + DAY, "reason": "billing",
         "outcome": "escalated", "sentiment": -0.5},
        {"event_id": "3", "type": "transaction", "ts": t + DAY, "amount": 100.0},
        {"event_id": "4", "type": "transaction", "ts": t + 3 * DAY, "amount": 50.0},
        {"event_id": "5", "type": "transaction", "ts": t + 3 * DAY, "kind": "refund", "amount": 30},
        {"event_id": "6", "type": "transaction", "ts": t + 3 * DAY, "kind": "payment", "amount": 9},
        {"event_id": "8", "type": "profile", "ts": t + 2 * DAY, "attributes": {"plan": "b"}},
        {"event_id": "7", "type": "profile", "ts": t + DAY, "attributes": {"plan": "a", "x": 1},
         "owner": "rep1"},
        {"event_id": "9", "type": "profile", "ts": t + 2 * DAY, "attributes": {"x": None}},
    ]
    st = state_of(events)
    f = st.features()
    assert (f["purchases"], f["frequency"], f["total_spend"], f["monetary"], f["aov"]) == \
        (2, 1, 150.0, 75.0, 75.0)
    assert (f["refunds"], f["total_refunded"], f["refund_rate"], f["payments"]) == (1, 30.0, 0.2, 1)
    assert (f["calls_reason_complaint"], f["calls_escalated"], f["call_open"]) == (1, 1, 1)
    assert f["days_since_complaint"] == 3.0 and f["sentiment_trend"] < 0 < f["tenure_days"]
    assert f["days_since_cancel_request"] == -1.0  # a complaint is not a cancel request
    assert st.attributes == {"plan": "b"} and st.owner == "rep1"
    st.update({"event_id": "10", "type": "call", "ts": t + 2 * DAY, "reason": "cancel_request"})
    f = st.features(t + 4 * DAY)  # ... and a cancel request is a complaint too
    assert (f["days_since_cancel_request"], f["days_since_complaint"]) == (2.0, 2.0)


def test_stored_form_round_trips_and_every_feature_is_documented() -> None:
    st = state_of(rich_events(random.Random(11)))
    full, stored = st.features(), st.stored()
    assert compact(full) == stored and expand(stored) == full
    names = set(FEATURES)
    for name in full:
        assert name in names or any(name.startswith(n.split("<")[0]) for n in names if "<" in n)


def test_state_survives_a_snapshot() -> None:
    events = rich_events(random.Random(12))
    st = state_of(events[:200])
    restored = pickle.loads(pickle.dumps(st))
    assert restored.features() == st.features()
    for e in events[200:]:
        for s in (st, restored):
            s.update(e)
    assert view(restored) == view(st)


def test_through_the_customer_step_duplicates_and_batching_change_nothing() -> None:
    events = rich_events(random.Random(13), n=200)
    one_by_one, c = [], None
    for e in events:
        c, out = process_batch(c, [e], Context())
        one_by_one = [o for o in out if o[0] == "profile"] or one_by_one
    batched, _ = process_batch(None, events + events[:50], Context())
    docs = [o for o in process_batch(batched, events[::3], Context())[1] if o[0] == "profile"]
    assert not docs  # only duplicates: nothing to write
    assert batched is not None and c is not None
    assert batched.state.stored() == c.state.stored() == one_by_one[-1][2]["f"]


def test_reading_features_is_cheap() -> None:
    """The flow reads features once per customer per batch: keep update + read small. The
    bound is loose (a shared, loaded machine); the figure is printed with -s."""
    rng = random.Random(14)
    events = sorted(rich_events(rng, n=3000, span_days=30), key=lambda e: e["ts"])
    st = CustomerState("c1")
    start = time.process_time()
    for e in events:
        st.update(e)
        st.features()
    per_event = (time.process_time() - start) / len(events) * 1e6
    print(f"update + features: {per_event:.1f} us per event")
    assert per_event < 400
