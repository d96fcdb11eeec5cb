"""The batch scorer gives River's own predictions, for every model shape the engine learns."""

from __future__ import annotations

import random

import pytest

from engine.models import OnlineModel, pipeline_for
from engine.scoring import LinearScorer, scorer_for


def standard_scaled() -> object:
    """The learners' shape before max-abs scaling: models pickled then still load and score."""
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.05))


def unclipped() -> object:
    """River's own max-abs scaler, as models were built before the clipping."""
    from river import linear_model, optim, preprocessing

    return preprocessing.MaxAbsScaler() | linear_model.LogisticRegression(optimizer=optim.SGD(0.2))


def trained(name: str, rng: random.Random, n: int, pipeline: object = None) -> OnlineModel:
    m = OnlineModel(name, pipeline=pipeline or pipeline_for(name))
    for _ in range(n):
        x = {f"f{j}": rng.gauss(j, 1 + j) for j in range(rng.randint(3, 12))}
        x["const"] = 1.0  # zero variance: contributes nothing, as in River
        x[f"cat#{rng.randrange(5)}"] = 1.0
        m.learn_one(x, rng.random() < 0.3 + 0.05 * x["f0"])
    return m


@pytest.mark.parametrize("seed", range(4))
def test_batch_scores_equal_each_pipeline(seed: int) -> None:
    rng = random.Random(seed)
    models = {f"offer:{i}": trained(f"offer:{i}", rng, rng.randint(1, 300)) for i in range(6)}
    models |= {"outcome:churned": trained("outcome:churned", rng, 200),
               "offer:legacy": trained("offer:legacy", rng, 150, standard_scaled()),
               "offer:unclipped": trained("offer:unclipped", rng, 150, unclipped()),
               "offer:new": OnlineModel("offer:new")}
    scorer = LinearScorer(models)
    assert {"outcome:churned", "offer:legacy", "offer:unclipped"} <= set(scorer.names)
    for _ in range(50):
        x = {f"f{j}": rng.gauss(0, 20) for j in range(rng.randint(0, 15))}  # often beyond training
        x["never_seen"] = rng.random()
        x[f"cat#{rng.randrange(7)}"] = 1.0
        got = scorer.predict(x)
        assert set(got) == set(models)
        for name, m in models.items():
            assert got[name] == pytest.approx(m.predict_one(x), abs=1e-12), name


def test_a_model_of_another_shape_is_asked_directly_and_scorers_follow_versions() -> None:
    from river import naive_bayes

    rng = random.Random(9)
    odd = OnlineModel("offer:nb", pipeline=naive_bayes.GaussianNB())
    for _ in range(50):
        odd.learn_one({"f": rng.random()}, rng.random() < 0.5)
    lin = trained("offer:lin", rng, 100)
    cache: dict = {}
    scorer = scorer_for({"offer:nb": odd, "offer:lin": lin}, cache)
    assert scorer.names == ["offer:lin"] and "offer:nb" in scorer.others
    assert scorer.predict({"f": 0.3})["offer:nb"] == odd.predict_one({"f": 0.3})
    assert scorer_for({"offer:nb": odd, "offer:lin": lin}, cache) is scorer
    lin.learn_one({"f0": 1.0}, True)  # a new version: a new scorer
    assert scorer_for({"offer:nb": odd, "offer:lin": lin}, cache) is not scorer
