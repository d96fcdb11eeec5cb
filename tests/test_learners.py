"""The online learners use what the vectors carry: one-hot strings and sparse indicators (present
only when true) move the models as much as dense numbers do."""

from __future__ import annotations

import random

import pytest

from engine.models import OnlineModel, pipeline_for
from engine.vector import vectorize


def stream(rng: random.Random, n: int) -> list[tuple[dict[str, float], bool]]:
    out = []
    for _ in range(n):
        plan = rng.choice(["gold", "basic", "trial"])
        bought = rng.random() < 0.3
        features = {"visits_30d": rng.randint(0, 20), "total_spend": rng.expovariate(1 / 200)}
        if bought:
            features["bought_travel"] = 1.0  # as the flow stores it: absent until true
        # the truth: plan and the indicator decide; the dense numbers are noise
        p = {"gold": 0.1, "basic": 0.45, "trial": 0.8}[plan] - (0.3 if bought else 0.0)
        out.append((vectorize(features, {"plan": plan}), rng.random() < max(p, 0.02)))
    return out


@pytest.mark.parametrize("name", ["offer:o1", "outcome:churned"])
def test_models_learn_from_one_hot_strings_and_sparse_indicators(name: str) -> None:
    rng = random.Random(5)
    model = OnlineModel(name, pipeline=pipeline_for(name))
    for x, y in stream(rng, 4000):
        model.learn_one(x, y)
    assert model.auc.get() > 0.75  # progressive; chance is 0.5
    trial = vectorize({"visits_30d": 5, "total_spend": 100.0}, {"plan": "trial"})
    gold = vectorize({"visits_30d": 5, "total_spend": 100.0}, {"plan": "gold"})
    assert model.predict_one(trial) - model.predict_one(gold) > 0.4
    bought = {**trial, "bought_travel": 1.0}
    assert model.predict_one(trial) - model.predict_one(bought) > 0.15
