"""Value and segments through the real flow and API: p_alive, expected purchases, CLV over a
horizon, RFM, segment and tier on the profile, and usable in rules."""

from __future__ import annotations

import random

from tests.conftest import ev, get_json, wait_for

T0 = 1_767_225_600.0
DAY = 86400.0


def test_profile_carries_value_scores_that_follow_the_horizon(api, flow) -> None:
    rng = random.Random(5)
    events = []
    for i in range(300):
        cid = f"v{i}"
        rate = rng.choice([0.05, 0.1, 0.3])      # purchases per day while active
        life = rng.uniform(10, 120)              # days until the customer drops out
        t, k = rng.uniform(0, 20), 0
        while t < min(life, 120):
            events.append(ev(f"{cid}-{k}", "transaction", T0 + t * DAY, cid,
                             amount=round(rng.uniform(10, 200), 2)))
            t += rng.expovariate(rate)
            k += 1
    events.append(ev("clock", "click", T0 + 120 * DAY, "someone"))
    for i in range(0, len(events), 1000):
        assert api.post("/v1/events", json=events[i:i + 1000]).status_code == 202
    flow.drain()

    def scored():
        s = get_json(api, "/v1/customers/v1")["scores"]
        return s if s["p_alive"] is not None and s["segment"] not in (None, "prospect") else None

    s = wait_for(scored, timeout=30)
    assert 0 <= s["p_alive"] <= 1 and s["expected_purchases"] >= 0 and s["clv"] >= 0
    assert set(s["rfm"]) >= {"r", "f", "m"} and s["tier"] in {"bronze", "silver", "gold", "platinum"}
    short = get_json(api, "/v1/customers/v1", params={"horizon_days": 30})["scores"]
    assert short["expected_purchases"] <= s["expected_purchases"]
    assert short["clv"] <= s["clv"]
    alive = [get_json(api, f"/v1/customers/v{i}")["scores"]["p_alive"] for i in range(0, 300, 10)]
    assert len({round(a, 3) for a in alive}) > 5  # it differentiates customers
    assert api.get("/v1/customers/v1", params={"horizon_days": -1}).status_code == 422
