"""Does the engine learn? The decision logic and online models, in process, against the
simulated population (whose hidden tastes give a known best offer per customer).

    ./nb bench decisions [--decisions 40000] [--customers 3000]

Prints, per 10k decisions: acceptance and expected value per decision of the engine, of a
random choice among the same candidates, and of an oracle that knows the hidden tastes; and the
share of the random-to-oracle gap the engine closes. Writes bench/results/decisions.json.
Contact policy and control groups are off here: this measures learning, not governance.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import orjson

from config import Settings
from engine.catalog import Catalog
from engine.decide import Profile, Request, decide
from engine.features import CustomerState
from engine.models import OnlineModel
from engine.vector import vectorize
from nextbest.simulator import Population

RESULTS = Path(__file__).parent / "results"


def run(decisions: int, customers: int, seed: int, epsilon: float,
        exploration: str = "thompson") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    catalog = Catalog.load(Settings().rules_dir / "offers.yaml")
    offers = [o for o in catalog.offers if o.kind == "offer"]
    pop = Population(customers, rng, 1_767_225_600.0)
    states = {c.id: CustomerState(c.id) for c in pop.customers}
    models = {o.id: OnlineModel("offer:" + o.id) for o in offers}
    ts, rows, block = 1_767_225_600.0, [], {"n": 0, "acc": 0, "rnd": 0.0, "orc": 0.0,
                                          "val": 0.0, "rval": 0.0, "oval": 0.0}
    for i in range(decisions):
        ts += 30.0
        c = pop.pick()
        for ev in pop.activity(c, ts):
            states[c.id].update(ev)
        st = states[c.id]
        features = st.features()
        profile = Profile(c.id, features, st.attributes, {}, {"marketing": True}, True)
        x = vectorize(features, st.attributes, {"channel": "web"})
        d = decide(catalog, models, profile, Request("web", {}, 1, [o.id for o in offers]), x, ts,
                   rng, epsilon, 0.0, exploration=exploration)
        if not d.ranked:
            continue
        chosen = d.ranked[0].offer
        accepted = pop.respond(c, chosen.category)
        models[chosen.id].learn_one(x, accepted)
        ps = [c.p_accept(o.category) for o in offers]
        vs = [p * o.value for p, o in zip(ps, offers)]
        block["n"] += 1
        block["acc"] += accepted
        block["rnd"] += sum(ps) / len(ps)
        block["orc"] += max(ps)
        block["val"] += c.p_accept(chosen.category) * chosen.value
        block["rval"] += sum(vs) / len(vs)
        block["oval"] += max(vs)
        if block["n"] == 10_000 or i == decisions - 1:
            n = block["n"]
            row = {"decisions": i + 1, "acceptance": block["acc"] / n, "random": block["rnd"] / n,
                   "oracle": block["orc"] / n, "value": block["val"] / n,
                   "random_value": block["rval"] / n, "oracle_value": block["oval"] / n}
            row["gap_closed_value"] = (row["value"] - row["random_value"]) / (
                row["oracle_value"] - row["random_value"])
            rows.append(row)
            print(f"{row['decisions']:>7,}: acceptance {row['acceptance']:.1%} (random "
                  f"{row['random']:.1%}, oracle {row['oracle']:.1%}) | value/decision "
                  f"{row['value']:.2f} (random {row['random_value']:.2f}, oracle "
                  f"{row['oracle_value']:.2f}) | gap closed {row['gap_closed_value']:.0%}", flush=True)
            block = dict.fromkeys(block, 0) | {"rnd": 0.0, "orc": 0.0, "val": 0.0, "rval": 0.0, "oval": 0.0}
    return rows


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench decisions")
    ap.add_argument("--decisions", type=int, default=40_000)
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--exploration", choices=["thompson", "epsilon"], default="thompson")
    args = ap.parse_args(argv)
    rows = run(args.decisions, args.customers, args.seed, args.epsilon, args.exploration)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decisions.json").write_text(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
