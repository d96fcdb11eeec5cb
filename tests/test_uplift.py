"""Control groups and uplift: stable assignment, arithmetic, and the flow measuring both groups."""

from __future__ import annotations

import pytest

from engine.catalog import Offer
from engine.decide import in_control
from engine.uplift import expire, on_purchase, track, uplift
from tests.conftest import ev, get_json

T0 = 1_767_225_600.0


def test_assignment_is_stable_and_near_the_share() -> None:
    offer = Offer(id="o1", control=0.2)
    first = [in_control(f"c{i}", offer, 0.05) for i in range(5000)]
    again = [in_control(f"c{i}", offer, 0.05) for i in range(5000)]
    assert first == again
    assert 0.18 < sum(first) / 5000 < 0.22
    other = [in_control(f"c{i}", Offer(id="o2", control=0.2), 0.05) for i in range(5000)]
    assert first != other  # independent per offer


def test_uplift_arithmetic() -> None:
    u = uplift(200, 50, 100, 10)
    assert u["treated_rate"] == 0.25 and u["control_rate"] == 0.1 and u["uplift"] == 0.15
    lo, hi = u["ci95"]
    se = (0.25 * 0.75 / 200 + 0.1 * 0.9 / 100) ** 0.5
    assert lo == pytest.approx(0.15 - 1.959964 * se, abs=1e-4) and hi == pytest.approx(0.15 + 1.959964 * se, abs=1e-4)
    assert uplift(10, 5, 10, 1)["ci95"] is None  # groups too small for an interval
    assert uplift(0, 0, 0, 0)["uplift"] is None


def test_exposure_windows() -> None:
    ex: dict = {}
    assert track(ex, "o1", 100.0, False, "home") == [("exposure", "offer:o1", False, 100.0)]
    assert track(ex, "o1", 500.0, True, "home") == []  # one open window per offer
    assert track(ex, "o2", 50.0, True, "travel")
    assert track(ex, "o3", 95.0, True, None)  # no category (a catalog to the contract's fields)
    assert set(ex) == {"o1", "o2", "o3"}
    assert on_purchase(ex, {"home"}, 90.0) == [("conversion", "offer:o1", False, True, 90.0),
                                               ("conversion", "offer:o3", True, True, 90.0)]
    assert on_purchase(ex, {"home"}, 95.0) == []       # converts once
    expire(ex, 60.0)
    assert ex == {}
    assert on_purchase(ex, {"travel"}, 70.0) == []     # window closed
    track(ex, "o4", 100.0, False, None)
    assert on_purchase(ex, set(), 99.0) == [("conversion", "offer:o4", False, True, 99.0)]  # any purchase


def test_performance_reports_uplift_against_control(api, flow, settings) -> None:
    # 400 consenting customers asked for `city_break` (category travel); 25% held out; the
    # treated buy travel more often than the control group
    body = {"channel": "web", "offers": ["city_break"]}
    events, served = [], {}
    for i in range(400):
        events.append(ev(f"u{i}-c", "consent", T0, f"u{i}", purpose="marketing", granted=True))
    api.post("/v1/events", json=events)
    flow.drain()
    import pathlib

    import yaml
    path = pathlib.Path(settings.rules_dir) / "offers.yaml"
    doc = yaml.safe_load(path.read_text())
    assert any(o["id"] == "city_break" and o.get("category") == "travel" for o in doc["offers"])
    settings.control_share = 0.25
    for i in range(400):
        d = api.post("/v1/decisions", json={**body, "customer_id": f"u{i}"}).json()
        served[f"u{i}"] = bool(d["offers"])
    buys = []
    for i, (cid, treated) in enumerate(served.items()):
        if (treated and i % 2 == 0) or (not treated and i % 5 == 0):
            buys.append(ev(f"{cid}-buy", "transaction", T0 + 3600, cid, amount=300.0,
                           items=[{"category": "travel"}]))
    api.post("/v1/events", json=buys)
    flow.drain()
    import time
    time.sleep(2.5)
    perf = get_json(api, "/v1/offers/city_break/performance")
    conv = perf["conversion"]
    n_control = sum(not t for t in served.values())
    assert 60 < n_control < 140
    assert conv["treated"] + conv["control"] <= 400
    assert conv["treated_rate"] == pytest.approx(0.5, abs=0.08)
    assert conv["control_rate"] == pytest.approx(0.2, abs=0.1)
    assert perf["uplift"] > 0.15 and perf["uplift_ci95"][0] > 0
