"""Model and data drift with planted changes: a flipped target relation (quality), a shifted
input feature (inputs), a source whose events start failing validation or arriving late
(sources); and the same streams without the change raise nothing.

Stated bounds (also in engine/inputdrift.py and engine/sourcedrift.py):
- quality: a flipped target is reported within 300 examples of the flip (ADWIN, delta 0.002);
- inputs: a one-standard-deviation mean shift of one feature (or a one-hot feature's presence
  rate going from 10% to 40%) is reported within 2 x 200 = 400 examples once the 300-example
  reference is complete, and names that feature only;
- sources: a dead-letter or lateness spike is reported in the first 200-event window that is
  wholly inside the spike, i.e. within 400 of the source's events.
"""

from __future__ import annotations

import pickle
import random

from engine import learning
from engine.inputdrift import InputDrift
from engine.models import OnlineModel
from engine.sourcedrift import SourceMonitor, spike_alert, tally
from tests.conftest import ev, get_json, wait_for

T0 = 1_767_225_600.0


def _x(rng: random.Random, shifted: bool = False, sparse_rate: float = 0.1) -> dict[str, float]:
    """Mixed input types as models see them: gaussians, counts, a sparse one-hot, a constant."""
    x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.gauss(1.0 if shifted else 0.0, 1),
         "visits_7d": float(int(rng.expovariate(0.5))),  # a count: many ties
         "is_vip": 0.0}
    if rng.random() < sparse_rate:
        x["attr_plan#12"] = 1.0
    return x


def _learn(stream: list[tuple[dict[str, float], bool]]) -> list[tuple[int, str]]:
    """Feed examples through learning.apply as the flow does; (index, kind) of each drift."""
    state, found = None, []
    for i, (x, y) in enumerate(stream):
        state, fired = learning.apply(state, "outcome:x", ("example", "outcome:x", x, y, T0 + i, {}))
        found += [(i, kind) for kind in fired]
    return found


def test_quality_drift_on_a_flipped_target_within_300_and_none_when_stationary() -> None:
    for seed in range(3):
        rng = random.Random(seed)
        flipped, steady = [], []
        for i in range(3000):
            x = _x(rng)
            y = x["a"] + 0.3 * rng.gauss(0, 1) > 0
            flipped.append((x, (not y) if i >= 1500 else y))
            steady.append((x, y))
        got = _learn(flipped)
        quality = [i for i, kind in got if kind == "quality"]
        assert quality and 1500 <= quality[0] <= 1800, (seed, got[:3])
        assert "inputs" not in {kind for _, kind in got}  # the inputs did not change
        assert _learn(steady) == [], seed


def test_input_drift_names_the_shifted_feature_within_400_examples() -> None:
    for seed in range(3):
        rng = random.Random(seed)
        stream = [(_x(rng, shifted=i >= 1500), rng.random() < 0.3) for i in range(3000)]
        state = None
        first = None
        for i, (x, y) in enumerate(stream):
            state, fired = learning.apply(state, "offer:o", ("example", "offer:o", x, y, T0 + i, {}))
            if "inputs" in fired and first is None:
                first = i
                assert [s.name for s in state.model.shifted] == ["c"], (seed, state.model.shifted)
                alert = learning.drift_alert(state, "inputs")
                assert alert is not None and alert.type == "model_drift" and alert.owner == "admin"
                assert alert.reasons[0].startswith("feature c shifted: mean ")
                assert "KS " in alert.reasons[0] and "Model offer:o inputs shifted: c" == alert.title
        assert first is not None and 1500 <= first < 1900, (seed, first)
        assert state is not None and state.meta()["input_drift"]["drifts"] == 1


def test_input_drift_on_a_one_hot_feature_becoming_common() -> None:
    rng = random.Random(7)
    monitor, found = InputDrift(), []
    for i in range(3000):
        found += monitor.update(_x(rng, sparse_rate=0.4 if i >= 1500 else 0.1))
    assert [s.name for s in found] == ["attr_plan#12"]
    assert 1500 <= found[0].at <= 1900
    assert abs(found[0].reference_mean - 0.1) < 0.05 and found[0].recent_mean > 0.25


def test_no_input_drift_on_stationary_input_over_40_streams() -> None:
    # 40 streams x 3000 examples = 520 window tests, each with a false-alarm bound of 1e-3
    for seed in range(40):
        rng = random.Random(1000 + seed)
        monitor = InputDrift()
        found = [s for _ in range(3000) for s in monitor.update(_x(rng))]
        assert found == [], (seed, found)
        assert monitor.state()["state"] == "stable" and monitor.state()["checked_at"] == 2900


def test_input_drift_state_stays_small_and_old_pickles_load() -> None:
    rng = random.Random(3)
    model = OnlineModel("offer:o")
    for _ in range(1234):
        x = {f"f{k}": rng.random() for k in range(80)}  # more features than it tracks
        model.learn_one(x, rng.random() < 0.3)
    assert model.inputs.state()["tracked_features"] == 48
    published = pickle.dumps(model.inputs.without_buffer())
    assert len(published) < 8000  # windows are counts; the API's copy has no buffer
    restored = pickle.loads(pickle.dumps(model.inputs))  # a snapshot keeps the 34 unabsorbed
    assert len(restored._buffer) == 1234 % 100 and restored.seen == model.inputs.seen
    for _ in range(66):  # ... so the restored monitor closes its next window where the live one does
        x = {f"f{k}": rng.random() for k in range(80)}
        assert restored.update(x) == model.inputs.update(x)
    assert restored.state() == model.inputs.state()
    old = model.__dict__.copy()
    del old["inputs"], old["shifted"]  # a model pickled before input drift existed
    legacy = OnlineModel.__new__(OnlineModel)
    legacy.__setstate__(old)
    assert legacy.learn_one({"f0": 1.0}, True) in (True, False) and legacy.inputs.seen == 1
    bad = InputDrift(chunk=2, reference=2, window=2)
    for v in ("x", None, float("nan"), 1e400, 2.0, 3.0):  # bad values never crash it
        bad.update({"f": v})  # type: ignore[dict-item]
    assert bad.seen == 6


def _source_stream(monitor: SourceMonitor, rng: random.Random, batches: int,
                   spike_from: int | None, kind: str = "dead") -> list:
    alerts = []
    for b in range(batches):
        counts = {}
        for src in ("web", "app"):
            bad_rate = 0.35 if spike_from is not None and b >= spike_from and src == "web" else 0.01
            n = 50
            bad = sum(rng.random() < bad_rate for _ in range(n))
            counts[src] = [n - bad, 0, bad] if kind == "dead" else [n, bad, 0]
        alerts += [(b, s) for s in monitor.update(counts, T0 + b)]
    return alerts


def test_source_spike_names_the_source_and_steady_sources_raise_nothing() -> None:
    for seed in range(5):
        for kind in ("dead", "late"):
            rng = random.Random(seed)
            mon = SourceMonitor()
            got = _source_stream(mon, rng, 100, spike_from=40, kind=kind)
            assert [s.source for _, s in got] == ["web"], (seed, kind, got)
            b, spike = got[0]
            assert 40 <= b < 48  # 4 batches of 50 per window: within 2 windows
            word = "dead-lettered" if kind == "dead" else "late"
            assert spike.reason().startswith("source web: ") and word in spike.reason()
            assert mon.state()["app"]["state"] == "stable"
            alert = spike_alert(spike, T0)
            assert alert.type == "model_drift" and alert.owner == "admin"
            assert alert.data["source"] == "web"
            steady = SourceMonitor()
            assert _source_stream(steady, rng, 100, spike_from=None, kind=kind) == []


def test_late_events_are_counted_against_the_customer_latest_event() -> None:
    evs = [{"ts": T0, "channel": "web"}, {"ts": T0 - 7200, "channel": "web"},
           {"ts": T0 - 600, "channel": "app"}, {"ts": T0 - 9999, "_internal": True}]
    assert tally(evs, None, 3600.0) == {"web": [2, 1, 0], "app": [1, 0, 0]}
    assert tally(evs[2:3], T0 + 3001, 3600.0) == {"app": [1, 1, 0]}  # 1 s over the bound
    assert tally(evs[2:3], T0 + 3000, 3600.0) == {"app": [1, 0, 0]}  # exactly at it: on time


def test_drift_through_the_api_and_flow(api, flow) -> None:
    """One outcome model whose input `attr_score` shifts, and a source `web` whose events start
    failing validation; `app` stays steady. Seen in GET /v1/models and as model_drift alerts."""
    rng = random.Random(11)
    events = []
    for i in range(1200):
        cid, ts = f"m{i}", T0 + i * 60
        score = rng.gauss(2.0 if i >= 600 else 0.0, 1.0)
        events += [ev(f"p{i}", "profile", ts, cid, attributes={"score": round(score, 3)}),
                   ev(f"o{i}", "outcome", ts + 1, cid, name="churned", value=rng.random() < 0.3)]
    for k in range(0, len(events), 800):
        api.post("/v1/events", json=events[k:k + 800])
    flow.drain()

    def calls(n: int, start: int, spike: bool) -> None:
        for c in range(start, start + n):  # 100 events per call and source, in order
            batch = []
            for src in ("web", "app"):
                bad = 40 if spike and src == "web" else (1 if c % 2 else 0)
                for j in range(100):
                    e = ev(f"{src}{c}-{j}", "click", T0 + c * 100 + j, f"s{j}", channel=src)
                    if j < bad:
                        e["ts"] = "not a time"
                    batch.append(e)
            assert api.post("/v1/events", json=batch).status_code == 202
            flow.drain()

    calls(6, 0, spike=False)
    calls(3, 6, spike=True)

    def drifted() -> list:
        alerts = get_json(api, "/v1/alerts", params={"type": "model_drift"})["alerts"]
        return alerts if {a["data"].get("signal") for a in alerts} >= {"inputs", "source"} else []

    alerts = wait_for(drifted, timeout=30)
    inputs = [a for a in alerts if a["data"]["signal"] == "inputs"]
    assert inputs[0]["owner"] == "admin" and "attr_score" in inputs[0]["title"]
    assert inputs[0]["reasons"][0].startswith("feature attr_score shifted: mean ")
    sources = [a for a in alerts if a["data"]["signal"] == "source"]
    assert [a["data"]["source"] for a in sources] == ["web"]
    assert "dead-lettered" in sources[0]["reasons"][0]
    body = get_json(api, "/v1/models")
    churn = next(m for m in body["models"] if m["name"] == "outcome:churned")
    assert churn["input_drift"]["drifts"] >= 1 and churn["examples"] == 1200
    assert body["sources"]["web"]["dead_letter"]["spikes"] == 1
    assert body["sources"]["web"]["dead_letter"]["last_window"] >= 0.3
    assert body["sources"]["web"]["dead_letters"] == 6 // 2 + 3 * 40  # 1 in odd calls, then 40s
    assert body["sources"]["app"]["dead_letter"]["spikes"] == 0
    assert body["sources"]["app"]["state"] == "stable"


def test_a_fast_replay_of_a_sorted_clickstream_has_no_late_events(api, flow) -> None:
    """Retailrocket-like visitors, a fifth of them signing in and buying, sorted by time and
    posted at once: a customer's events come through two partition streams (their own, and
    their cookie's), read side by side. 4-9% of the web's events counted as late (and raised
    "late events spiked") in a 100,000-event replay; nothing is late in this file."""
    rng = random.Random(3)
    rows = []
    for v in range(700):
        t = T0 + rng.uniform(0, 120 * 86400)
        for n in range(rng.randrange(10, 40)):
            rows.append(ev(f"rr{v}-{n}", "click", round(t, 3), None, anonymous_id=f"v{v}",
                           action="product_view", category="c1", channel="web"))
            t += rng.uniform(600, 86400 * 3)
            if rng.random() < 0.02:
                rows += [ev(f"rr{v}-{n}-i", "identify", round(t, 3), f"u{v}", anonymous_id=f"v{v}"),
                         ev(f"rr{v}-{n}-t", "transaction", round(t + 30, 3), f"u{v}",
                            amount=50.0, channel="web")]
    rows.sort(key=lambda r: r["ts"])
    for k in range(0, len(rows), 1000):
        assert api.post("/v1/events", json=rows[k:k + 1000]).json()["accepted"] == len(rows[k:k + 1000])
    flow.drain()
    web = get_json(api, "/v1/models")["sources"]["web"]
    assert (web["late_events"], web["events"]) == (0, sum(r.get("channel") == "web" for r in rows))
