"""Which River learner should outcome models use? Candidates compared on the outcome stream
the simulator produces, through the flow's own code path.

    ./nb bench learners [--customers 6000] [--steps 150000] [--seeds 1 2]

The stream: the simulated population (5% planted churners who complain, then leave) plays
bursts of activity; each customer's events go through `engine.customer.process_batch`, exactly
as in the flow, and every `outcome:churned` example it emits (the feature vector of
`engine.vector.vectorize` at the time of the label, and the label) is fed to each candidate
wrapped in `engine.models.OnlineModel`, so progressive AUC and log loss are measured the way
`GET /v1/models` shows them (each example scored before it is learned). Labels are imbalanced
(a few % positive).

Besides quality, outcome models have a budget: the flow scores every outcome model on each
customer batch that is not only clicks, the API re-scores on read, and the model state is
pickled, signed and published to Redis every few changes, then unpickled by every API process.
So learn+predict time per example and the pickled size are printed beside the quality.
`bench/bench_public.py` runs the same candidates on a public data set (CDNOW).
Writes bench/results/learners.json.

What it showed (2 cores, shared): the simulator's churn signal is easy (a complaint just before
the label) and every linear learner reaches progressive AUC ~0.995-0.998 on it; the Hoeffding
tree is worse (0.89-0.92), the forests no better, pickled at 1-2 MB (ARF) and 13 MB (AMF)
here and 20 MB / 130 MB on CDNOW, against 5-9 KB, at 5-15x the scoring time. On CDNOW, AdaGrad logistic regression (test AUC
0.776, log loss 0.489) beat the SGD one (0.761, 0.540) and matched batch logistic regression
(0.777), at the same size and scoring cost; so outcome models use it
(`engine.models.outcome_pipeline`); on the simulator it was level on AUC, slightly higher on log
loss (0.072-0.077 vs 0.062).
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from river import compose, forest, imblearn, linear_model, optim, preprocessing, tree

from engine.customer import Context, Customer, process_batch
from engine.features import DAY
from engine.models import OnlineModel, default_pipeline, outcome_pipeline
from engine.types import Vector
from nextbest.simulator import Population

RESULTS = Path(__file__).parent / "results"
START = 1_767_225_600.0
Example = tuple[Vector, bool]


def _balanced_logreg() -> compose.Pipeline:
    """Logistic regression that sees positives as often as negatives (random over-sampling)."""
    return preprocessing.StandardScaler() | imblearn.RandomOverSampler(
        linear_model.LogisticRegression(optimizer=optim.SGD(0.05), l2=1e-4),
        desired_dist={False: 0.5, True: 0.5}, seed=1)


def _maxabs_logreg(optimizer: Callable[[], Any]) -> Callable[[], compose.Pipeline]:
    """Logistic regression over max-abs scaled inputs: a feature absent from a vector stays 0,
    so sparse indicators (one-hot strings, `bought_<category>`) keep their signal (a standard
    scaler sees them only when present, always 1.0: variance 0, contribution 0)."""
    return lambda: preprocessing.MaxAbsScaler() | linear_model.LogisticRegression(
        optimizer=optimizer(), l2=1e-4)


LEARNERS: dict[str, Callable[[], Any]] = {
    "logreg SGD (default_pipeline)": default_pipeline,
    "logreg AdaGrad (outcome_pipeline)": outcome_pipeline,
    "logreg SGD, max-abs scaled": _maxabs_logreg(lambda: optim.SGD(0.05)),
    "logreg AdaGrad, max-abs scaled": _maxabs_logreg(lambda: optim.AdaGrad(0.1)),
    "logreg over-sampled 50/50": _balanced_logreg,
    "hoeffding adaptive tree": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=1),
    "adaptive random forest x10": lambda: forest.ARFClassifier(n_models=10, seed=1),
    "aggregated mondrian forest x10": lambda: forest.AMFClassifier(n_estimators=10, seed=1),
}


def simulator_stream(customers: int, steps: int, seed: int) -> list[Example]:
    """The `outcome:churned` examples the flow's code emits while the population plays."""
    rng = random.Random(seed)
    pop = Population(customers, rng, START)
    pop.plant_changes(START + 3 * DAY)
    states: dict[str, Customer | None] = {}
    ctx, ts, out = Context(), START, []
    for _ in range(steps):
        ts += 20.0
        c = pop.pick()
        events = pop.activity(c, ts)
        if not events:
            continue
        states[c.id], outputs = process_batch(states.get(c.id), events, ctx)
        out += [(o[2], o[3]) for o in outputs if o[0] == "example" and o[1] == "outcome:churned"]
    return out


def progressive(name: str, examples: list[Example]) -> tuple[OnlineModel, dict[str, Any]]:
    """Learn a fresh candidate over the stream; its progressive quality, speed and size."""
    model = OnlineModel("outcome:bench", pipeline=LEARNERS[name]())
    start = time.perf_counter()
    for x, y in examples:
        model.learn_one(x, y)  # predict (progressive validation) + learn, as in the flow
    seconds = time.perf_counter() - start
    q = model.quality()
    learn_us, predict_us = timings(LEARNERS[name](), examples[:2000])
    row = {"learner": name, "examples": len(examples), "positives": q["positives"],
           "auc": None if q["auc"] is None else float(q["auc"]),
           "logloss": float(q["logloss"] or 0.0), "us_per_example": learn_us,
           "predict_us": predict_us, "seconds": round(seconds, 2),
           "pickle_bytes": len(pickle.dumps(model.pipeline, protocol=pickle.HIGHEST_PROTOCOL))}
    return model, row


def timings(learner: Any, examples: list[Example]) -> tuple[float, float]:
    """The learner's own cost (without the quality and drift tracking every candidate shares):
    predict + learn per example over a stream, then predict alone on the learned model."""
    if not examples:
        return 0.0, 0.0
    start = time.perf_counter()
    for x, y in examples:
        learner.predict_proba_one(x)
        learner.learn_one(x, y)
    both = time.perf_counter() - start
    start = time.perf_counter()
    for x, _ in examples[:500]:
        learner.predict_proba_one(x)
    alone = time.perf_counter() - start
    return (round(both / len(examples) * 1e6, 1),
            round(alone / min(len(examples), 500) * 1e6, 1))


def print_table(title: str, rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    cells = [[_fmt(key, r.get(key)) for key, _ in cols] for r in rows]
    widths = [max([len(label)] + [len(row[i]) for row in cells])
              for i, (_, label) in enumerate(cols)]
    print(" | ".join(label.ljust(w) for (_, label), w in zip(cols, widths)))
    print("-|-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)), flush=True)


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if key in ("auc", "logloss") or "auc" in key or "logloss" in key:
        return f"{v:.4f}"
    return f"{v:,.0f}" if isinstance(v, int) or v >= 100 else f"{v:,.1f}"


COLUMNS = [("learner", "learner"), ("examples", "examples"), ("positives", "positives"),
           ("auc", "prog. AUC"), ("logloss", "log loss"), ("us_per_example", "learn+pred us"),
           ("predict_us", "predict us"), ("pickle_bytes", "pickle bytes")]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench learners")
    ap.add_argument("--customers", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=150_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = []
    for seed in args.seeds:
        start = time.perf_counter()
        stream = simulator_stream(args.customers, args.steps, seed)
        print(f"simulator seed {seed}: {len(stream):,} outcome:churned examples "
              f"({sum(y for _, y in stream):,} positive) from {args.steps:,} activity bursts "
              f"of {args.customers:,} customers through engine.customer.process_batch "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
        rows = [progressive(name, stream)[1] | {"seed": seed} for name in args.learners]
        print_table(f"outcome 'churned', simulator seed {seed}", rows, COLUMNS)
        results += rows
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learners.json").write_text(
        orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
