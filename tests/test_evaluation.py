"""Off-policy evaluation: estimators against a known truth, and the command on a real log."""

from __future__ import annotations

import random

import pytest
from rich.console import Console

from engine.evaluation import Logged, epsilon_greedy, evaluate, greedy
from nextbest import evaluate as evaluate_cmd
from tests.conftest import ev


def simulated_log(n: int, seed: int) -> tuple[list[Logged], float]:
    """A uniform-random logging policy over 3 offers with known acceptance probabilities."""
    rng = random.Random(seed)
    truth = {"a": 0.3, "b": 0.1, "c": 0.05}
    cands = {o: (p, 1.0) for o, p in truth.items()}
    logs = []
    for _ in range(n):
        served = rng.choice(list(truth))
        logs.append(Logged(cands, served, 1 / 3, 1.0 if rng.random() < truth[served] else 0.0))
    return logs, truth["a"]


def test_estimators_recover_the_value_of_a_policy_never_run() -> None:
    logs, true_greedy = simulated_log(20_000, 1)
    e = evaluate(logs, greedy())
    assert e["logged"] == pytest.approx(0.15, abs=0.01)
    for k in ("ips", "snips", "dr"):
        assert e[k] == pytest.approx(true_greedy, abs=0.02), k
    drop = evaluate(logs, greedy(drop={"a"}))   # a catalog change: without offer a
    assert drop["snips"] == pytest.approx(0.1, abs=0.015)
    eps = evaluate(logs, epsilon_greedy(0.3))
    assert eps["dr"] == pytest.approx(0.7 * 0.3 + 0.3 * 0.15, abs=0.02)


def test_command_reads_the_engine_decision_log(api, flow, settings) -> None:
    settings.control_share = 0.0
    for i in range(40):
        api.post("/v1/events", json=[ev(f"e{i}", "consent", 1_767_225_600.0, f"o{i}",
                                        purpose="marketing", granted=True)])
    flow.drain()
    for i in range(40):
        d = api.post("/v1/decisions", json={"customer_id": f"o{i}", "channel": "web"}).json()
        outcome = "accepted" if i % 4 == 0 else "rejected"
        api.post(f"/v1/decisions/{d['decision_id']}/feedback",
                 json={"offer_id": d["offers"][0]["offer_id"], "outcome": outcome})
    flow.drain()
    out = evaluate_cmd.run(settings, {"laptop_bundle": 0.5}, {"city_break"}, 0.05, Console(quiet=True))
    logged = out["greedy/acceptance"]
    assert logged["n"] == 40 and logged["logged"] == pytest.approx(0.25)
    assert "greedy with catalog change/value" in out
