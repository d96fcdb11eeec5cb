"""The population view the value model and RFM need: a bounded, deterministic sample of
customer summaries, refitted as it changes.

The sample is a bottom-k sketch on a hash of the customer id (a uniform sample that is the same
whatever the order of arrival, so one worker or many give the same parameters); each customer's
latest summary replaces their previous one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import trim_mean

from engine.value import DAY, fit_bgnbd, fit_gamma_gamma

SAMPLE = 20_000
FIT_SAMPLE = 5_000
MIN_CUSTOMERS = 50


def _h(cid: str) -> int:
    return zlib.crc32(cid.encode())


@dataclass
class Population:
    sample: dict[str, dict[str, float]] = field(default_factory=dict)
    clock: float = 0.0
    changes: int = 0
    fits: int = 0
    params: dict[str, Any] | None = None

    def add(self, cid: str, summary: dict[str, float] | None, ts: float) -> None:
        """The customer's latest summary; None takes them out (erased, or merged away)."""
        self.clock = max(self.clock, ts)
        if summary is None:
            if self.sample.pop(cid, None) is not None:
                self.changes += 1
            return
        if len(self.sample) >= SAMPLE and cid not in self.sample:
            worst = max(self.sample, key=_h)
            if _h(cid) >= _h(worst):
                return
            del self.sample[worst]
        self.sample[cid] = summary
        self.changes += 1

    def due(self) -> bool:
        n = len(self.sample)
        return n >= MIN_CUSTOMERS and self.changes >= max(MIN_CUSTOMERS, n // 4)

    def refit(self) -> dict[str, Any]:
        """Fit BG/NBD and Gamma-Gamma on (a fixed subsample of) the sample; RFM quintile cuts."""
        ids = sorted(self.sample, key=_h)[:FIT_SAMPLE]
        rows = [self.sample[i] for i in ids]
        x = np.array([r["x"] for r in rows], dtype=float)
        t0 = np.array([r["t0"] for r in rows])
        t_x = (np.array([r["tl"] for r in rows]) - t0) / DAY
        T = np.maximum((self.clock - t0) / DAY, t_x)
        m = np.array([r["m"] for r in rows])
        n = np.array([r["n"] for r in rows], dtype=float)
        recency = (self.clock - np.array([r["tl"] for r in rows])) / DAY
        q = [20, 40, 60, 80]
        repeaters = int((x > 0).sum())
        identifiable = repeaters >= 20 and float(t_x.max()) >= 1.0  # repeat purchases over days
        self.params = {
            "bgnbd": fit_bgnbd(x, t_x, T) if identifiable else None,
            "gamma_gamma": fit_gamma_gamma(x, m) if (x > 0).sum() >= 20 else None,
            # a first purchase's expected spend: trimmed, so one outlier (a wholesale order, a
            # mistyped amount) does not set every one-time buyer's CLV
            "mean_spend": float(trim_mean(m, 0.05)),
            "rfm": {"recency": np.percentile(recency, q).round(4).tolist(),
                    "frequency": np.percentile(n, q).round(4).tolist(),
                    "monetary": np.percentile(m, q).round(4).tolist()},
            "fitted_at": self.clock, "customers": len(self.sample), "fit_on": len(rows),
            "version": self.fits + 1,
        }
        self.fits += 1
        self.changes = 0
        return self.params


def step(pop: Population | None, items: list[tuple[Any, ...]]) -> tuple[Population, list[Any]]:
    """bytewax step: `("summary", "population", cid, summary, ts)` in; `("value_params", p)` out."""
    pop = pop or Population()
    for _, _, cid, summary, ts in items:
        pop.add(cid, summary, ts)
    return pop, [("value_params", pop.refit())] if pop.due() else []
