"""Contact policy through the real API: caps across and per channel over rolling windows,
cooldown after a rejection, suppression after an acceptance, hot reload of the policy file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bench.metrics import decision_paths
from engine.policy import Policy, record
from engine.rules import RuleError
from tests.conftest import KEY, ev, get_json

T0 = 1_767_225_600.0
DAY = 86400.0


def setup(api, flow, cid: str) -> None:
    api.post("/v1/events", json=[ev(f"{cid}-c", "consent", T0, cid, purpose="marketing", granted=True),
                                 ev(f"{cid}-t", "transaction", T0, cid, amount=500.0)])
    flow.drain()


def marketing(api, cid: str, channel: str) -> list[str]:
    d = api.post("/v1/decisions", json={"customer_id": cid, "channel": channel, "limit": 1}).json()
    return [o["offer_id"] for o in d["offers"] if o["kind"] == "offer"]


def test_caps_across_and_per_channel(api, flow) -> None:
    setup(api, flow, "cap1")
    assert marketing(api, "cap1", "web") and marketing(api, "cap1", "web")
    assert marketing(api, "cap1", "web") == []          # 2 a day on web/app
    assert marketing(api, "cap1", "call_center")        # other channels still open
    assert marketing(api, "cap1", "call_center") == []  # 3 a week across channels
    assert marketing(api, "cap1", "email") == []


def test_rejection_cooldown_and_acceptance_suppression(api, flow, settings) -> None:
    settings.control_share = 0.0  # no hold-outs: this test is about the policy
    setup(api, flow, "fb1")
    body = {"customer_id": "fb1", "channel": "web", "offers": ["city_break", "garden_sale"], "limit": 1}
    d = api.post("/v1/decisions", json=body).json()
    first = d["offers"][0]["offer_id"]
    api.post(f"/v1/decisions/{d['decision_id']}/feedback", json={"offer_id": first, "outcome": "rejected"})
    d2 = api.post("/v1/decisions", json=body).json()
    second = d2["offers"][0]["offer_id"]
    assert second != first  # the rejected one cools down
    api.post(f"/v1/decisions/{d2['decision_id']}/feedback", json={"offer_id": second, "outcome": "accepted"})
    # the accepted one is suppressed too; with both held back (and the cap), nothing is left
    assert api.post("/v1/decisions", json={**body, "channel": "call_center"}).json()["offers"] == []


def test_policy_arithmetic_over_rolling_windows() -> None:
    p = Policy.parse({"caps": [{"name": "week", "kinds": ["offer"], "window_days": 7, "max": 2}],
                      "cooldown_after_rejection_days": 3})
    s = record(record({}, [("a", "offer")], "web", 0.0), [("b", "offer")], "web", DAY)
    assert p.blocked(s, [("c", "offer")], "web", 2 * DAY) == {"c": "contact cap week: 2 in 7 days"}
    assert p.blocked(s, [("c", "offer")], "web", 7.5 * DAY) == {}  # the first fell out of the window
    assert p.blocked(s, [("svc", "service")], "web", 2 * DAY) == {}  # service actions are not capped
    s["rej"] = {"c": 10 * DAY}
    assert p.blocked(s, [("c", "offer")], "web", 12 * DAY) == {"c": "rejected recently"}
    assert p.blocked(s, [("c", "offer")], "web", 13.5 * DAY) == {}
    with pytest.raises(RuleError, match="cap #0"):
        Policy.parse({"caps": [{"name": "broken"}]})


@pytest.mark.parametrize(("text", "message"), [
    ("caps: [{name: a, window_days: soon, max: 3}]\n", "policy.yaml: cap #0: window_days:"),
    ("caps: [{name: a, window_days: 1, max: -1}]\n", "policy.yaml: cap #0: max:"),
    ("caps: [{name: a, window_days: 1, max: 2.5}]\n", "policy.yaml: cap #0: max:"),
    ("caps: [{window_days: 1, max: 2, kinds: offer}]\n", "policy.yaml: cap #0: kinds:"),
    ("caps: [just words]\n", "policy.yaml: cap #0: needs a mapping"),
    ("caps: 5\n", "policy.yaml: caps:"),
    ("cooldown_after_rejection_days: soon\n", "policy.yaml: cooldown_after_rejection_days:"),
    ("suppress_after_acceptance_days: -1\n", "policy.yaml: suppress_after_acceptance_days:"),
    ("consistency_minutes: [1]\n", "policy.yaml: consistency_minutes:"),
    ("[1, 2]\n", "policy.yaml: needs a mapping"),
    ("caps: [\n", "policy.yaml: cannot read"),
])
def test_policy_errors_name_the_cap_and_field(tmp_path: Path, text: str, message: str) -> None:
    """Any mistake is a `RuleError` (a bad number raised ValueError or TypeError before, which
    the API's reloading holder did not catch)."""
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as exc:
        Policy.load(path)
    assert str(exc.value).startswith(message), str(exc.value)


def test_policy_file_reloads_without_restart(settings, flow, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(settings.rules_dir, rules)
    settings.rules_dir = rules
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as api:
        setup(api, flow, "rl1")
        assert marketing(api, "rl1", "web")
        (rules / "policy.yaml").write_text("caps:\n  - {name: none, kinds: [offer], window_days: 7, max: 1}\n")
        deadline = time.monotonic() + 10
        while api.app.state.nb.policy.value.caps[0].name != "none" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marketing(api, "rl1", "call_center") == []
        time.sleep(0.05)  # a distinct modification time
        (rules / "policy.yaml").write_text("caps:\n  - {name: typo, window_days: soon, max: 1}\n")
        deadline = time.monotonic() + 10
        while get_json(api, "/v1/status")["policy_error"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get_json(api, "/v1/status")["policy_error"].startswith("policy.yaml: cap #0: window_days:")
        assert api.app.state.nb.policy.value.caps[0].name == "none"  # the last good one kept


def test_metrics_count_how_each_decision_was_answered(api, flow) -> None:
    setup(api, flow, "path1")
    before = decision_paths(api.get("/metrics").text)
    body = {"customer_id": "path1", "channel": "web", "offers": ["city_break", "garden_sale"]}
    seen = []
    for _ in range(3):  # ranked, then the same lead kept, then capped (2 a day on web): nothing
        offers = api.post("/v1/decisions", json=body).json()["offers"]
        seen.append("empty" if not offers else
                    "consistency" if any("consistency" in r for r in offers[0]["reasons"]) else "ranked")
    assert seen == ["ranked", "consistency", "empty"]
    after = decision_paths(api.get("/metrics").text)
    assert {k: after[k] - before.get(k, 0) for k in after} == {"ranked": 1, "consistency": 1, "empty": 1}
