"""Do the alerts find the customers who changed, and leave the others alone? The per-customer
logic of the flow (`engine.customer.process_batch`, silence ticks as the flow's sink schedules
them, the churn model learned online from `outcome` events, the population's value fit), in
process, over months of event time of a simulated population with planted changes.

    ./nb bench alerts [--customers 1000] [--days 240] [--seed 7]

Every customer buys on a renewal process of their own (mean gap 3-40 days, regularity from
Poisson to fairly regular), browses, calls now and then, and some renewals carry a
`churned: false` label. Planted, each at a known event time in the middle of the run:

- churner: stops buying, browsing and calling; the `churned: true` label arrives 30 days later
  (the account closes), so a churn alert counts only if raised before that label;
- rhythm: stops buying, keeps browsing and calling;
- spend: keeps the rhythm, spends a quarter of before;
- sentiment: starts calling every few days, angry.

Prints per alert type (and per planted kind): planted, alerted, true positives, precision,
recall, median and p90 detection delay in days (event time from the planted change to the first
alert), and false alerts per 1,000 steady customer-months. Writes bench/results/alerts.json.
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from config import Settings
from engine import population
from engine.customer import Context, Customer, process_batch
from engine.models import OnlineModel
from engine.opportunity import AlertRules
from nextbest.simulator import Population, SimCustomer

RESULTS = Path(__file__).parent / "results"
T0 = 1_767_225_600.0
DAY = 86400.0
HOUR = 3600.0
SWEEP_S = 3600.0  # as flows/sink.py: silence sweeps every hour of event time
LABEL_DELAY = 30 * DAY
KINDS = ("churner", "rhythm", "spend", "sentiment")
SHARE = {"churner": 0.05, "rhythm": 0.03, "spend": 0.03, "sentiment": 0.03}
TARGETS = {"customer_drift": KINDS, "churn_risk": ("churner",), "overall": KINDS}


@dataclass
class Planted:
    customer: SimCustomer
    kind: str | None  # None: steady
    change: float | None = None
    gap: float = 7.0  # mean days between purchases
    shape: float = 2.0  # gamma shape of the gaps: 1 is Poisson, higher is more regular


def plan(pop: Population, days: float, rng: random.Random) -> list[Planted]:
    out = []
    for c in pop.customers:
        roll, kind, acc = rng.random(), None, 0.0
        for k in KINDS:
            acc += SHARE[k]
            if kind is None and roll < acc:
                kind = k
        change = T0 + rng.uniform(0.3, 0.7) * days * DAY if kind else None
        gap = min(40.0, max(3.0, rng.lognormvariate(2.1, 0.5)))
        out.append(Planted(c, kind, change, gap, rng.choice((1.0, 2.0, 4.0))))
    return out


def timeline(pop: Population, p: Planted, end: float, rng: random.Random) -> list[dict[str, Any]]:
    """One customer's events over the run, with the planted change applied."""
    c, start = p.customer, T0 + rng.uniform(0, 2 * DAY)
    def after(t: float) -> bool:
        return p.change is not None and t >= p.change

    def gone(t: float) -> bool:
        return p.kind == "churner" and after(t)

    evs = pop.onboard(c, start)
    t = start + rng.gammavariate(p.shape, p.gap / p.shape) * DAY
    while t < end and not gone(t) and not (p.kind == "rhythm" and after(t)):
        evs.append(pop.purchase(c, t, 0.25 if p.kind == "spend" and after(t) else 1.0))
        t += rng.gammavariate(p.shape, p.gap / p.shape) * DAY
    t = start + rng.expovariate(1 / 3) * DAY
    while t < end and not gone(t):
        evs += [pop.click(c, t + 20 * k, f"s{int(t) // 1800}") for k in range(rng.randint(1, 3))]
        t += rng.expovariate(1 / 3) * DAY
    t = start + rng.expovariate(1 / 45) * DAY
    while t < end and not gone(t):
        angry = p.kind == "sentiment" and after(t)
        evs.append(pop.call(c, t, "complaint" if angry else rng.choice(("billing", "delivery")),
                            rng.uniform(-1.0, -0.4) if angry else rng.uniform(-0.2, 0.8),
                            "unresolved" if angry else "resolved"))
        before, t = t, t + rng.expovariate(1 / 4 if angry else 1 / 45) * DAY
        if p.kind == "sentiment" and p.change is not None and before < p.change <= t:
            t = p.change + rng.expovariate(1 / 4) * DAY  # the first angry call comes soon
    t = start + rng.uniform(0, 30) * DAY
    while t < end and not gone(t):  # renewals: some of them labelled "not churned"
        if rng.random() < 0.2:
            evs.append(_label(pop, c, t, False))
        t += 30 * DAY
    if p.kind == "churner" and p.change is not None and p.change + LABEL_DELAY < end:
        evs.append(_label(pop, c, p.change + LABEL_DELAY, True))
    return evs


def _label(pop: Population, c: SimCustomer, ts: float, churned: bool) -> dict[str, Any]:
    return {"event_id": pop._id(), "type": "outcome", "ts": ts, "customer_id": c.id,
            "name": "churned", "value": churned}


class Engine:
    """The flow's customer side and its feedback paths, in process and in event time."""

    def __init__(self, settings: Settings) -> None:
        rules = AlertRules.load(settings.rules_dir / "alerts.yaml")
        self.models: dict[str, OnlineModel] = {}
        self.value_params: dict[str, Any] | None = None
        self.ctx = Context(models=lambda: self.models, alert_rules=lambda: rules,
                           churn_threshold=settings.churn_threshold, lateness=settings.lateness_s)
        if hasattr(self.ctx, "value_params"):
            self.ctx.value_params = lambda: self.value_params  # type: ignore[attr-defined]
        self.states: dict[str, Customer | None] = {}
        self.watch: dict[str, float] = {}
        self.heap: list[tuple[float, str]] = []
        self.alerts: list[dict[str, Any]] = []
        self.pop: population.Population | None = None
        self.summaries: list[tuple[Any, ...]] = []
        self.clock = 0.0
        self.next_sweep = 0.0

    def run(self, events: list[dict[str, Any]]) -> None:
        events.sort(key=lambda e: e["ts"])
        i = 0
        while i < len(events):
            hour_end = (events[i]["ts"] // HOUR + 1) * HOUR
            by_cid: dict[str, list[dict[str, Any]]] = defaultdict(list)
            while i < len(events) and events[i]["ts"] < hour_end:
                by_cid[events[i]["customer_id"]].append(events[i])
                i += 1
            for cid, evs in by_cid.items():
                self.step(cid, evs)
                self.clock = max(self.clock, evs[-1]["ts"])
            if self.summaries:
                self.pop, out = population.step(self.pop, self.summaries)
                self.summaries = []
                for item in out:
                    self.value_params = item[1]
            if self.clock >= self.next_sweep:
                self.next_sweep = self.clock + SWEEP_S
                self.sweep()

    def step(self, cid: str, evs: list[dict[str, Any]]) -> None:
        self.states[cid], out = process_batch(self.states.get(cid), evs, self.ctx)
        for item in out:
            kind = item[0]
            if kind == "alert":
                self.alerts.append(item[1])
            elif kind == "watch":
                if item[2] is None:
                    self.watch.pop(item[1], None)
                else:
                    self.watch[item[1]] = item[2]
                    heapq.heappush(self.heap, (item[2], item[1]))
            elif kind == "example" and item[1].startswith("outcome:"):
                self.models.setdefault(item[1], OnlineModel(item[1])).learn_one(item[2], item[3])
            elif kind == "summary":
                self.summaries.append(item)

    def sweep(self) -> None:
        """As flows/sink.py: a tick for every customer whose watch deadline has passed."""
        while self.heap and self.heap[0][0] <= self.clock:
            deadline, cid = heapq.heappop(self.heap)
            if self.watch.get(cid) != deadline:
                continue  # moved since
            del self.watch[cid]
            self.step(cid, [{"type": "tick", "_internal": True, "customer_id": cid,
                             "ts": self.clock, "event_id": f"tick:{cid}:{deadline:.0f}"}])


def score(plans: list[Planted], alerts: list[dict[str, Any]], days: float) -> list[dict[str, Any]]:
    """One row per alert type, then one per planted kind it targets. A true positive is a
    targeted customer's first alert after their change (for churn_risk: before the label); a
    false alert is one on a steady customer or before the change."""
    by_id = {p.customer.id: p for p in plans}
    steady_months = sum(p.kind is None for p in plans) * days / (365.25 / 12)
    rows = []
    for atype, kinds in TARGETS.items():
        mine = sorted((a for a in alerts if a["type"] == atype or atype == "overall"
                       and a["type"] in ("customer_drift", "churn_risk")), key=lambda a: a["ts"])
        first: dict[str, float] = {}
        false = [a for a in mine if _false(by_id[a["customer_id"]], a["ts"])]
        for a in mine:
            p = by_id[a["customer_id"]]
            if p.kind in kinds and p.change is not None and a["ts"] >= p.change \
                    and p.customer.id not in first \
                    and not (a["type"] == "churn_risk" and a["ts"] >= p.change + LABEL_DELAY):
                first[p.customer.id] = (a["ts"] - p.change) / DAY
        false_customers = len({a["customer_id"] for a in false})
        steady_false = sum(by_id[a["customer_id"]].kind is None for a in false)
        for kind in (None, *kinds) if len(kinds) > 1 else (None,):
            group = [p for p in plans if p.kind in kinds and kind in (None, p.kind)]
            delays = sorted(first[p.customer.id] for p in group if p.customer.id in first)
            row: dict[str, Any] = {"type": atype, "kind": kind or "+".join(kinds),
                                   "planted": len(group), "detected": len(delays),
                                   "recall": len(delays) / len(group) if group else None,
                                   "median_delay_days": _pct(delays, 0.5),
                                   "p90_delay_days": _pct(delays, 0.9)}
            if kind is None:
                tp = len(delays)
                row.update(alerted=len({a["customer_id"] for a in mine}), alerts=len(mine),
                           false_alerts=len(false),
                           precision=tp / (tp + false_customers) if tp + false_customers else None,
                           false_per_1000_steady_months=round(1000 * steady_false / steady_months, 2))
            rows.append(row)
    return rows


def _false(p: Planted, ts: float) -> bool:
    return p.kind is None or (p.change is not None and ts < p.change)


def _pct(xs: list[float], q: float) -> float | None:
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2) if xs else None


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def show(rows: list[dict[str, Any]]) -> None:
    print(f"{'type':<15}{'planted kind':<32}{'planted':>8}{'alerted':>8}{'TP':>6}{'prec':>7}"
          f"{'recall':>7}{'med d':>7}{'p90 d':>7}{'FP/1k steady-mo':>16}")
    for r in rows:
        sub = "alerted" not in r
        print(f"{r['type'] if not sub else '':<15}{('  ' if sub else '') + r['kind']:<32}"
              f"{r['planted']:>8}{'' if sub else r['alerted']:>8}{r['detected']:>6}"
              f"{'' if sub else _f(r['precision'], '.0%'):>7}{_f(r['recall'], '.0%'):>7}"
              f"{_f(r['median_delay_days'], '.1f'):>7}{_f(r['p90_delay_days'], '.1f'):>7}"
              f"{'' if sub else _f(r['false_per_1000_steady_months'], '.1f'):>16}")


def run(customers: int, days: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    pop = Population(customers, rng, T0, churn_share=0.0, drift_share=0.0)
    plans = plan(pop, days, rng)
    end = T0 + days * DAY
    events = [e for p in plans for e in timeline(pop, p, end, rng)]
    settings = Settings()
    start = time.monotonic()
    engine = Engine(settings)
    engine.run(events)
    elapsed = time.monotonic() - start
    rows = score(plans, engine.alerts, days)
    counts: dict[str, int] = defaultdict(int)
    for a in engine.alerts:
        counts[a["type"]] += 1
    signals: dict[str, int] = defaultdict(int)  # false drift alerts by signal: what misfires
    by_id = {p.customer.id: p for p in plans}
    for a in engine.alerts:
        if a["type"] == "customer_drift" and _false(by_id[a["customer_id"]], a["ts"]):
            signals[a["data"].get("signal", "?")] += 1
    churn = engine.models.get("outcome:churned")
    return {"settings": {"customers": customers, "days": days, "seed": seed,
                         "planted": {k: sum(p.kind == k for p in plans) for k in KINDS},
                         "steady": sum(p.kind is None for p in plans),
                         "churn_threshold": settings.churn_threshold,
                         "label_delay_days": LABEL_DELAY / DAY},
            "events": len(events), "seconds": round(elapsed, 1), "alerts_by_type": dict(counts),
            "false_drift_by_signal": dict(signals),
            "churn_model": {k: float(v) if v is not None else None
                            for k, v in churn.quality().items()} if churn else None, "rows": rows}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench alerts")
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--days", type=float, default=240.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    print(f"alerts bench: {args.customers} customers over {args.days:g} days of event time, "
          f"seed {args.seed}; planted shares {SHARE}, changes at 30-70% of the run, churn label "
          f"{LABEL_DELAY / DAY:.0f} days after a churner goes quiet", flush=True)
    res = run(args.customers, args.days, args.seed)
    s = res["settings"]
    print(f"planted {s['planted']}, steady {s['steady']}; {res['events']:,} events in "
          f"{res['seconds']} s; alerts {res['alerts_by_type']}; false drift alerts by signal "
          f"{res['false_drift_by_signal']}; churn model {res['churn_model']}")
    show(res["rows"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "alerts.json").write_text(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
