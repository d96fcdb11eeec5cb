"""The value model against a known process and against a reference implementation (lifetimes)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.generate_data import beta_geometric_nbd_model

from engine.population import Population
from engine.value import (
    DAY,
    at_horizon,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    p_alive,
    segment,
)

TRUE = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}


@pytest.fixture(scope="module")
def history():
    np.random.seed(42)
    df = beta_geometric_nbd_model(T=52.0, size=6000, **TRUE)
    return (df["frequency"].to_numpy(float), df["recency"].to_numpy(float),
            df["T"].to_numpy(float))


def test_parameters_recovered_from_a_known_process(history) -> None:
    x, t_x, T = history
    fit = fit_bgnbd(x, t_x, T)
    # 6000 customers: maximum-likelihood standard errors are ~10-20% for r, alpha and a, b
    # (a and b trade off against each other), so allow 35% and check the implied mean too
    for k in ("r", "alpha"):
        assert abs(fit[k] - TRUE[k]) / TRUE[k] < 0.35, (k, fit[k])
    assert abs(fit["a"] / (fit["a"] + fit["b"]) - 0.8 / 3.3) < 0.06  # mean dropout probability


def test_same_fit_and_figures_as_the_reference(history) -> None:
    x, t_x, T = history
    ours = fit_bgnbd(x, t_x, T)
    ref = BetaGeoFitter(penalizer_coef=0.0).fit(x, t_x, T)
    for k in ("r", "alpha", "a", "b"):
        assert ours[k] == pytest.approx(ref.params_[k], rel=0.03), k
    for i in range(0, 6000, 397):
        assert p_alive(ours, x[i], t_x[i], T[i]) == pytest.approx(
            np.ravel(ref.conditional_probability_alive(x[i], t_x[i], T[i]))[0], abs=0.01)
        assert expected_purchases(ours, 26, x[i], t_x[i], T[i]) == pytest.approx(
            np.ravel(ref.conditional_expected_number_of_purchases_up_to_time(26, x[i], t_x[i], T[i]))[0],
            rel=0.03, abs=0.01)


def test_gamma_gamma_matches_the_reference() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(1, 10, 3000).astype(float)
    nu = rng.gamma(3.0, 1 / 15.0, 3000)
    m = np.array([rng.gamma(6.0 * k, 1 / (nu_i * k)) for k, nu_i in zip(x, nu)])
    ours = fit_gamma_gamma(x, m)
    ref = GammaGammaFitter(penalizer_coef=0.0).fit(x, m)
    for k in ("p", "q", "v"):
        assert ours[k] == pytest.approx(ref.params_[k], rel=0.05), k


def test_population_refits_and_scores_follow_the_clock() -> None:
    pop = Population()
    np.random.seed(7)
    df = beta_geometric_nbd_model(T=60.0, size=800, **TRUE)
    t_start = 1_767_225_600.0
    clock = t_start + 60 * DAY
    for i, row in enumerate(df.itertuples()):
        t0 = clock - row.T * DAY
        pop.add(f"c{i}", {"x": row.frequency, "t0": t0, "tl": t0 + row.recency * DAY,
                          "m": 20.0 + i % 50, "n": row.frequency + 1}, clock)
    t = time.perf_counter()
    params = pop.refit()
    assert time.perf_counter() - t < 5.0
    assert params["bgnbd"] and params["gamma_gamma"] and len(params["rfm"]["monetary"]) == 4
    v = {"x": 4, "t0": t_start, "tl": t_start + 55 * DAY, "m": 60.0, "n": 5}
    now = at_horizon(v, 365, params, t_start + 60 * DAY)
    later = at_horizon(v, 365, params, t_start + 200 * DAY)
    assert 0 < later["p_alive"] < now["p_alive"] <= 1  # silence lowers survival
    assert now["clv"] > later["clv"] > 0
    assert at_horizon(v, 30, params, t_start + 60 * DAY)["expected_purchases"] < now["expected_purchases"]
    assert now["segment"] in {"champions", "loyal", "potential_loyalist", "promising"}
    assert later["rfm"]["r"] == 1


def test_segments_cover_every_score() -> None:
    names = {segment(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert "champions" in names and "hibernating" in names


def test_one_outlier_neither_sets_first_buyers_clv_nor_outlives_its_erasure() -> None:
    """A wholesale order (or a mistyped amount) among ordinary ones: a one-time buyer's
    expected spend stays ordinary, and erasing the customer takes them out of the sample."""
    pop, clock = Population(), 1_767_225_600.0 + 90 * DAY
    for i in range(80):
        t0 = clock - (30 + i) * DAY
        pop.add(f"c{i}", {"x": i % 4, "t0": t0, "tl": t0 + 20 * DAY, "m": 40.0 + i, "n": i % 4 + 1},
                clock)
    pop.add("whale", {"x": 0, "t0": clock - 10 * DAY, "tl": clock - 10 * DAY, "m": 1e12, "n": 1},
            clock)
    assert pop.refit()["mean_spend"] < 200.0  # the plain mean is 1.2e10
    pop.add("whale", None, clock)
    assert "whale" not in pop.sample and len(pop.sample) == 80


def test_erasure_and_a_merged_visitor_leave_the_value_models_sample() -> None:
    from engine.customer import Context, process_batch

    ctx = Context()
    buy = {"event_id": "b1", "type": "transaction", "ts": 1.7e9, "customer_id": "c9", "amount": 5.0}
    c, out = process_batch(None, [buy], ctx)
    assert ("summary", "population", "c9") in [o[:3] for o in out]
    for gone in ({"type": "erase", "event_id": "e", "ts": 1.7e9 + 1, "customer_id": "c9"},
                 {"type": "forget", "event_id": "f", "ts": 1.7e9 + 1, "customer_id": "c9", "into": "c10"}):
        _, out = process_batch(c, [gone], ctx)
        assert ("summary", "population", "c9", None, 1.7e9 + 1) in out
