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


@pytest.mark.parametrize("name", ["offer:o1", "outcome:churned"])
def test_a_feature_far_beyond_what_the_model_learned_is_held_at_its_largest(name: str) -> None:
    """Churn labels that arrive seconds after each profile: `days_since_profile` is learned at
    ~0.0003 days and asked days later. Unclipped, it was scaled to ~7,000 and every churn risk
    read 0.0; held at the largest value learned, the plan still decides."""
    rng = random.Random(3)
    model = OnlineModel(name, pipeline=pipeline_for(name))
    for x, y in stream(rng, 3000):
        model.learn_one({**x, "days_since_profile": rng.uniform(0, 0.0004)}, y)
    for plan, low, high in (("trial", 0.5, 0.95), ("gold", 0.02, 0.3)):
        x = vectorize({"visits_30d": 5, "total_spend": 100.0}, {"plan": plan})
        at_most = model.predict_one({**x, "days_since_profile": 0.0004})
        days_later = model.predict_one({**x, "days_since_profile": 2.5})
        assert days_later == at_most and low < days_later < high, (plan, days_later)


def test_models_pickled_with_the_unclipped_scaler_load_clipped_with_their_state() -> None:
    import pickle

    from river import preprocessing

    from engine.models import ClippedMaxAbsScaler, default_pipeline

    rng = random.Random(4)
    old = OnlineModel("offer:o1", pipeline=preprocessing.MaxAbsScaler() | default_pipeline()["LogisticRegression"])
    for x, y in stream(rng, 500):
        old.learn_one(x, y)
    x = vectorize({"visits_30d": 5, "total_spend": 100.0}, {"plan": "trial"})
    before = old.predict_one(x)
    new = pickle.loads(pickle.dumps(old))
    scaler = list(new.pipeline.steps.values())[0]
    assert type(scaler) is ClippedMaxAbsScaler and new.examples == 500
    assert new.predict_one(x) == before  # within the learned range: the same score
    assert new.predict_one({**x, "visits_30d": 1e6}) == new.predict_one({**x, "visits_30d": 20})
    assert old.predict_one({**x, "visits_30d": 1e6}) != old.predict_one({**x, "visits_30d": 20})
