"""`nextbest evaluate`: estimate from the decision log what another policy would have achieved.

Reads the logged decisions (candidates, served offer and its logging probability) and the
feedback that answered them from the partition streams, and prints IPS, SNIPS and doubly robust
estimates of acceptance rate and value per decision for: the logged policy, pure greedy, greedy
with lever changes (`--lever offer=2.0`) or without some offers (`--drop offer`), and
epsilon-greedy at a chosen rate.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from config import Settings, connect
from engine import store
from engine.evaluation import Logged, epsilon_greedy, evaluate, greedy


def read_log(settings: Settings) -> tuple[list[Logged], list[Logged]]:
    """(acceptance-reward logs, value-reward logs) for decisions that served one offer first."""
    c = connect.client(str(settings.redis_url))
    decisions: dict[str, dict[str, Any]] = {}
    feedback: dict[tuple[str, str], tuple[str, float | None]] = {}
    for p in range(settings.partitions):
        start = "-"
        while True:
            entries = c.xrange(store.stream(p), min=start, count=5000)
            for _, f in entries:
                ev = store.decode(f[b"e"])  # every entry is compressed (store._payload)
                if ev.get("type") == "decision" and ev.get("offers") and ev.get("candidates"):
                    decisions[ev["decision_id"]] = ev
                elif ev.get("type") == "feedback":
                    feedback[(ev["decision_id"], ev["offer_id"])] = (ev["outcome"], ev.get("value"))
            if len(entries) < 5000:
                break
            start = "(" + entries[-1][0].decode()
    acc, val = [], []
    for did, d in decisions.items():
        served = d["offers"][0]
        cands = {o: (pw[0], pw[1]) for o, pw in d["candidates"].items()}
        outcome, value = feedback.get((did, served), ("ignored", None))
        won = outcome == "accepted"
        mu = float(d.get("probability") or 1.0)
        acc.append(Logged(cands, served, mu, 1.0 if won else 0.0))
        val.append(Logged(cands, served, mu, (value if value is not None else cands[served][1]) if won else 0.0))
    return acc, val


def run(settings: Settings, levers: dict[str, float], drop: set[str], epsilon: float,
        console: Console) -> dict[str, Any]:
    acc, val = read_log(settings)
    if not acc:
        console.print("no decisions with an outcome in the log yet: nothing to evaluate "
                      "(decisions are joined to feedback, or counted ignored after the offer's "
                      "reward window)")
        return {}
    policies = {"greedy": greedy(), f"epsilon-greedy {epsilon:g}": epsilon_greedy(epsilon)}
    if levers or drop:
        policies["greedy with catalog change"] = greedy(levers, drop)
    t = Table(title=f"off-policy estimates from {len(acc):,} logged decisions")
    for col in ("policy", "reward", "logged", "IPS", "SNIPS", "DR", "eff. sample"):
        t.add_column(col, justify="right")
    out: dict[str, Any] = {}
    for name, pi in policies.items():
        for reward, logs in (("acceptance", acc), ("value", val)):
            e = evaluate(logs, pi)
            out[f"{name}/{reward}"] = e
            t.add_row(name, reward, f"{e['logged']:.4f}", f"{e['ips']:.4f}", f"{e['snips']:.4f}",
                      f"{e['dr']:.4f}", f"{e.get('effective_sample_size', 0):.0f}")
    console.print(t)
    return out
