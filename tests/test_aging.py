"""A stored profile read later: what the API moves on without the events equals what the flow
would compute at that time; a window passed only in part is an upper bound until the next event."""

from __future__ import annotations

import random

import pytest

from engine.aging import WINDOWED, age
from engine.featureset import DAY
from tests.test_features import rich_events, state_of

GAPS = (0.0, 600.0, 2 * 3600.0, 1.5 * DAY, 8 * DAY, 31 * DAY, 100 * DAY)


@pytest.mark.parametrize("seed", range(6))
def test_features_read_later_equal_the_flows_own_or_bound_them(seed: int) -> None:
    rng = random.Random(seed)
    st = state_of(rich_events(rng, n=rng.randint(5, 300), span_days=rng.choice([0.2, 3, 60])))
    stored, last = dict(st.stored()), st.last_ts
    for gap in GAPS:
        read = age(stored, gap)
        truth = dict(st.features(last + gap))
        assert set(read) == set(truth), gap
        for name, value in truth.items():
            if name in WINDOWED and gap < WINDOWED[name]:
                assert value <= read[name] + 1e-9, (gap, name)  # passed in part: an upper bound
            elif name.startswith("interest"):
                assert read[name] == pytest.approx(value, abs=1e-3), (gap, name)
            else:
                assert read[name] == pytest.approx(value, abs=3e-4), (gap, name)
        if gap >= 90 * DAY:
            assert not any(read[n] for n in WINDOWED), "every window is past"


def test_the_api_reads_an_idle_customers_windows_as_empty(api, flow) -> None:
    """Clicks, then months of the engine clock moving on with other customers' events."""
    from tests.conftest import ev, get_json

    t0 = 1_767_225_600.0
    api.post("/v1/events", json=[ev(f"i{i}", "click", t0 + i * 60, "idle", action="product_view",
                                    category="home") for i in range(5)])
    api.post("/v1/events", json=[ev("o1", "click", t0 + 120 * DAY, "other")])
    flow.drain()
    f = get_json(api, "/v1/customers/idle")["features"]
    assert f["click_count_90d"] == 0 and f["sessions_30d"] == 0 and f["click_count_1h"] == 0
    assert f["days_since_click"] == pytest.approx(120 - 4 / 1440, abs=1e-3)
    assert f["tenure_days"] == pytest.approx(120, abs=1e-3)
    assert "interest_home" not in f  # 17 half-lives: decayed away, as the flow drops it
