"""The online outcome models on a public real-world data set, against batch learners.

    ./nb bench public [--calibration-weeks 39] [--test-share 0.2]

Data: **CDNOW** (the "CDNOW master" data set of Fader, Hardie and Lee, "Counting your customers
the easy way", Marketing Science 2005; brucehardie.com/datasets): every purchase of the 23,570
customers who first bought at the online CD retailer CDNOW in the first quarter of 1997, up to
the end of June 1998 (69,659 transactions: customer id, date, number of CDs, dollar value). It
ships with the `lifetimes` package (a test dependency here) as
`lifetimes/datasets/CDNOW_master.txt`, so no download is needed.

Task: each customer's calibration-period purchases (the first 39 weeks, to 1997-09-30) are
replayed as nextbest `transaction` events through `engine.customer.process_batch`, as the flow
does, followed by an `outcome` event at the end of calibration whose label is "bought again in
the holdout period" (1997-10-01 to 1998-06-30). The example the flow's code emits for that
outcome (the customer's features as `engine.vector.vectorize` builds them: windows, recency,
frequency, monetary, tenure, ...) is the model input. About 22% of the customers buy again.

Split: a customer is in the test set when crc32(id) falls in the test share (deterministic, the
same for every model). Online: each River candidate of `bench.bench_learners` learns the train
customers once, as a stream in a seeded shuffled order (its progressive AUC printed), then is
scored on the test customers. Batch, on the same vectors and split: scikit-learn's
LogisticRegression (standardised inputs) and, as a ceiling, HistGradientBoostingClassifier.
Writes bench/results/public.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.bench_learners import LEARNERS, RESULTS, Example, print_table, progressive
from engine.customer import Context, process_batch
from engine.features import DAY

DATASET = "CDNOW master (Fader, Hardie & Lee 2005), shipped in lifetimes/datasets/CDNOW_master.txt"
START = datetime(1997, 1, 1, tzinfo=UTC).timestamp()
END = datetime(1998, 7, 1, tzinfo=UTC).timestamp()


def cdnow_path() -> Path:
    import lifetimes

    return Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"


def transactions(path: Path) -> dict[str, list[tuple[float, int, float]]]:
    """customer id -> [(ts at noon UTC, CDs, dollars)], in file order (by date per customer)."""
    out: dict[str, list[tuple[float, int, float]]] = {}
    for line in path.read_text().splitlines()[1:]:
        cid, day, cds, dollars = line.split()
        ts = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC).timestamp()
        out.setdefault(cid, []).append((ts, int(cds), float(dollars)))
    return out


def examples(data: dict[str, list[tuple[float, int, float]]], cutoff: float,
             ) -> dict[str, Example]:
    """Each customer's `outcome` example at `cutoff`, from the flow's own code."""
    ctx, out = Context(), {}
    for cid, rows in data.items():
        events = [{"event_id": f"{cid}-{i}", "type": "transaction", "ts": ts, "customer_id": cid,
                   "kind": "purchase", "amount": dollars, "items": [{"quantity": cds}]}
                  for i, (ts, cds, dollars) in enumerate(rows) if ts < cutoff]
        if not events:
            continue
        label = any(cutoff <= ts < END for ts, _, _ in rows)
        events.append({"event_id": f"{cid}-label", "type": "outcome", "ts": cutoff,
                       "customer_id": cid, "name": "repurchased", "value": label})
        _, outputs = process_batch(None, events, ctx)
        (x, y), = [(o[2], o[3]) for o in outputs if o[0] == "example"]
        out[cid] = (x, y)
    return out


def split(data: dict[str, Example], test_share: float, seed: int,
          ) -> tuple[list[Example], list[Example]]:
    """Deterministic by customer id; the train stream in a seeded shuffled order."""
    test = [ex for cid, ex in data.items() if zlib.crc32(cid.encode()) % 1000 < test_share * 1000]
    train = [ex for cid, ex in data.items()
             if zlib.crc32(cid.encode()) % 1000 >= test_share * 1000]
    random.Random(seed).shuffle(train)
    return train, test


def online(name: str, train: list[Example], test: list[Example]) -> dict[str, Any]:
    model, row = progressive(name, train)
    ys, ps = [y for _, y in test], [model.predict_one(x) for x, _ in test]
    return {"model": f"online: {name}", "test_auc": roc_auc_score(ys, ps),
            "test_logloss": log_loss(ys, ps, labels=[False, True]),
            "train_s": row["seconds"], "progressive_auc": row["auc"],
            "us_per_example": row["us_per_example"],
            "predict_us": row["predict_us"], "pickle_bytes": row["pickle_bytes"]}


def batch(name: str, estimator: Any, train: list[Example], test: list[Example]) -> dict[str, Any]:
    model = make_pipeline(DictVectorizer(sparse=False), *estimator)
    start = time.perf_counter()
    model.fit([x for x, _ in train], [y for _, y in train])
    seconds = time.perf_counter() - start
    ys, ps = [y for _, y in test], model.predict_proba([x for x, _ in test])[:, 1]
    return {"model": f"batch: {name}", "test_auc": roc_auc_score(ys, ps),
            "test_logloss": log_loss(ys, ps, labels=[False, True]), "train_s": seconds,
            "progressive_auc": None, "us_per_example": None, "predict_us": None,
            "pickle_bytes": None}


COLUMNS = [("model", "model"), ("test_auc", "test AUC"), ("test_logloss", "test log loss"),
           ("progressive_auc", "prog. AUC (train)"), ("train_s", "train s"),
           ("us_per_example", "learn+pred us"), ("predict_us", "predict us"),
           ("pickle_bytes", "pickle bytes")]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench public")
    ap.add_argument("--calibration-weeks", type=int, default=39)
    ap.add_argument("--test-share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    args = ap.parse_args(argv)
    cutoff = START + args.calibration_weeks * 7 * DAY
    start = time.perf_counter()
    data = examples(transactions(cdnow_path()), cutoff)
    train, test = split(data, args.test_share, args.seed)
    positives = sum(y for _, y in data.values())
    print(f"data set: {DATASET}\n{len(data):,} customers, calibration {args.calibration_weeks} "
          f"weeks, outcome 'bought again in the holdout' for {positives:,} "
          f"({positives / len(data):.1%}); train {len(train):,}, test {len(test):,}; features "
          f"from engine.customer.process_batch ({time.perf_counter() - start:.0f} s)", flush=True)
    rows = [online(name, train, test) for name in args.learners]
    rows.append(batch("logistic regression (scikit-learn, standardised)",
                      (StandardScaler(), LogisticRegression(max_iter=2000)), train, test))
    rows.append(batch("hist gradient boosting (scikit-learn)",
                      (HistGradientBoostingClassifier(random_state=args.seed),), train, test))
    print_table("CDNOW: bought again in the holdout period, test customers", rows, COLUMNS)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "public.json").write_text(orjson.dumps(
        {"dataset": DATASET, "customers": len(data), "positives": positives, "train": len(train),
         "test": len(test), "calibration_weeks": args.calibration_weeks, "rows": rows},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
