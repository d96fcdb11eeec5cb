"""Off-policy evaluation: what would another policy have earned, estimated from the decision log.

Each logged decision has the candidates with their propensity and worth (value x lever), the
served offer, the probability the logging policy had of serving it (`mu`), and the reward
observed (the offer's value when accepted, else 0). A target policy gives `pi(served | x)`.
Estimators: IPS, self-normalised IPS, and doubly robust with the logged propensities as the
reward model.

>>> logs = [Logged({"a": (0.5, 10.0), "b": (0.1, 10.0)}, "a", 0.9, 10.0),
...         Logged({"a": (0.5, 10.0), "b": (0.1, 10.0)}, "b", 0.1, 0.0)]
>>> round(evaluate(logs, greedy())["ips"], 3)
5.556
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Logged:
    candidates: dict[str, tuple[float, float]]  # offer -> (propensity, worth)
    served: str
    mu: float                                   # P(logging policy served `served`)
    reward: float


Policy = Callable[[dict[str, tuple[float, float]]], dict[str, float]]


def greedy(levers: dict[str, float] | None = None, drop: set[str] | None = None) -> Policy:
    """Serve the best propensity x worth (x a lever change; without dropped offers)."""
    levers, drop = levers or {}, drop or set()

    def pi(cands: dict[str, tuple[float, float]]) -> dict[str, float]:
        scores = {o: p * w * levers.get(o, 1.0) for o, (p, w) in cands.items() if o not in drop}
        if not scores:
            return {}
        best = max(scores, key=scores.__getitem__)
        return {best: 1.0}

    return pi


def epsilon_greedy(epsilon: float, **kw: Any) -> Policy:
    base = greedy(**kw)

    def pi(cands: dict[str, tuple[float, float]]) -> dict[str, float]:
        probs = {o: epsilon / len(cands) for o in cands}
        for o, p in base(cands).items():
            probs[o] = probs.get(o, 0.0) + (1 - epsilon) * p
        return probs

    return pi


def evaluate(logs: list[Logged], policy: Policy) -> dict[str, float]:
    if not logs:
        return {"n": 0, "ips": float("nan"), "snips": float("nan"), "dr": float("nan"),
                "logged": float("nan")}
    w, r, dm, qa = [], [], [], []
    for log in logs:
        probs = policy(log.candidates)
        w.append(probs.get(log.served, 0.0) / max(log.mu, 1e-6))
        r.append(log.reward)
        dm.append(sum(pr * log.candidates[o][0] * log.candidates[o][1] for o, pr in probs.items()))
        p, worth = log.candidates.get(log.served, (0.0, 0.0))
        qa.append(p * worth)
    w_, r_, dm_, qa_ = (np.array(v) for v in (w, r, dm, qa))
    return {"n": len(logs), "logged": float(r_.mean()), "ips": float((w_ * r_).mean()),
            "snips": float((w_ * r_).sum() / w_.sum()) if w_.sum() > 0 else float("nan"),
            "dr": float((dm_ + w_ * (r_ - qa_)).mean()),
            "effective_sample_size": float(w_.sum() ** 2 / (w_ ** 2).sum()) if (w_ ** 2).sum() else 0.0}
