"""Input drift: have the features a model reads moved away from what it learned on?

A model's error can hold for a while after its inputs move (a new traffic source, a broken
upstream feed, a unit changed from euros to cents), and by the time the error rises the
decisions are already wrong. So each model also watches its input vectors: per tracked feature,
the distribution of a recent window against a reference window, by the two-sample
Kolmogorov-Smirnov statistic with a Bonferroni correction over the features tested.

Why it is shaped like this: `learn_one` costs ~17 us and the flow learns every example of every
model, so the monitor may add about a microsecond per example, and its state travels inside the
signed model pickle, so it must stay a few KB.

- Per example, the vector is only appended to a buffer (no copy, no per-feature work).
- Every `chunk` examples the buffer becomes one float matrix over the tracked features (a
  feature absent from a vector counts as 0, so a one-hot indicator is compared by its presence
  rate) and compared with each feature's bin edges in one numpy call, which adds to counts of
  values above each edge (the empirical CDF at the edges, all KS needs).
- Bins are the quantiles of the first chunk after a (re)start (at most `bins` per feature, fewer
  for features with ties), so the state is counts, not samples. KS on binned CDFs takes
  the maximum over bin edges only, which can only understate the statistic: p-values are
  conservative. They come from the Kolmogorov distribution at the effective sample size with
  Stephens' small-sample correction (scipy.special.kolmogorov, vectorised: the exact `kstwo`
  took ~2 ms per feature).
- The reference is the first `reference` examples; the recent window tumbles every `window`
  examples and is tested when full. After a drift the reference is rebuilt from the next
  examples, so the new normal becomes the baseline and the same change is not reported twice:
  at least `reference + window` examples pass between two reports (the cooldown).
- The buffer (at most `chunk - 1` vectors) is part of the state, so a flow restored from its
  snapshots tests the same windows as one never stopped; `without_buffer()` is the lighter
  copy published to the API, which only reads the report.

Stated bound: a shift of the mean by one standard deviation in one feature, once the reference
is complete, is reported within `2 * window` examples (the window it starts in may be mixed; the
next one is wholly shifted). On a stationary stream each test reports a false drift with
probability below `alpha` (Bonferroni over features, conservative binned statistic).

>>> import random
>>> rng = random.Random(0)
>>> monitor, found = InputDrift(), []
>>> for i in range(2000):  # "a" moves by one standard deviation at example 1000
...     found += monitor.update({"a": rng.gauss(1.0 if i >= 1000 else 0.0, 1.0),
...                              "b": rng.gauss(0.0, 1.0)})
>>> [(s.name, s.at) for s in found]
[('a', 1100)]
>>> found[0].reason()  # the window it was found in was half shifted
'feature a shifted: mean 0.0702 -> 0.554 (KS 0.19, p=0.00033)'
>>> monitor.state()["state"]  # the reference was rebuilt after the shift: stable again
'stable'
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from scipy.special import kolmogorov

from engine.types import Vector


@dataclass
class Shift:
    """One feature whose recent distribution left its reference."""

    name: str
    statistic: float
    p_value: float
    reference_mean: float
    recent_mean: float
    at: int  # examples seen when it was found

    def reason(self) -> str:
        p = "p<1e-6" if self.p_value < 1e-6 else f"p={self.p_value:.2g}"
        return (f"feature {self.name} shifted: mean {self.reference_mean:.3g} -> "
                f"{self.recent_mean:.3g} (KS {self.statistic:.2f}, {p})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("statistic", "reference_mean", "recent_mean"):
            d[k] = round(d[k], 4)
        d["p_value"] = float(f"{self.p_value:.3g}")
        return d


# Features that measure time since something move with the clock (a young system's customers
# all age): they drift by construction, so they are not tracked.
CLOCKED = ("days_since_", "tenure_")


class InputDrift:
    """Per-feature distribution shift of a model's inputs against a reference window."""

    def __init__(self, reference: int = 300, window: int = 200, chunk: int = 100,
                 bins: int = 8, max_features: int = 48, alpha: float = 1e-3,
                 min_statistic: float = 0.1, ignore: tuple[str, ...] = CLOCKED) -> None:
        if reference % chunk or window % chunk:
            raise ValueError(f"reference {reference} and window {window} must be multiples "
                             f"of chunk {chunk}")
        self.reference, self.window, self.chunk = reference, window, chunk
        self.bins, self.max_features = bins, max_features
        self.alpha, self.min_statistic, self.ignore = alpha, min_statistic, ignore
        self.seen = 0
        self.drifts = 0
        self.status = "warming"
        self.checked_at: int | None = None
        self.report: list[Shift] = []  # the drifting features, or the closest ones when stable
        self._buffer: list[Vector] = []
        self._restart()

    def _restart(self) -> None:
        self.names: list[str] = []
        self.edges: np.ndarray | None = None  # features x (bins - 1), padded with +inf
        self.ref = self.win = np.zeros((0, self.bins - 1), np.int32)  # counts above each edge
        self.ref_sum = self.win_sum = np.zeros(0)
        self.ref_n = self.win_n = 0

    def without_buffer(self) -> InputDrift:
        """A shallow copy without the examples not yet absorbed (for publication)."""
        out = copy.copy(self)
        out._buffer = []
        return out

    def update(self, x: Vector) -> list[Shift]:
        """Take one input vector; the features found shifted when this closed a window."""
        self.seen += 1
        self._buffer.append(x)
        if len(self._buffer) < self.chunk:
            return []
        buf, self._buffer = self._buffer, []
        return self._absorb(buf)

    def _absorb(self, buf: list[Vector]) -> list[Shift]:
        if self.edges is None:
            self._choose(buf)
        m = self._matrix(buf)
        counts = self._exceed(m)
        if self.ref_n < self.reference:
            self.ref, self.ref_sum = self.ref + counts, self.ref_sum + m.sum(0)
            self.ref_n += len(buf)
            return []
        self.win, self.win_sum = self.win + counts, self.win_sum + m.sum(0)
        self.win_n += len(buf)
        return self._test() if self.win_n >= self.window else []

    def _choose(self, buf: list[Vector]) -> None:
        """Track the features most often present (varying ones first); bins from quantiles."""
        present = Counter(k for x in buf for k in x if not k.startswith(self.ignore))
        candidates = sorted(present)
        m = self._matrix(buf, candidates)
        spread = m.std(0) > 0
        order = sorted(range(len(candidates)),
                       key=lambda i: (-present[candidates[i]], not spread[i], candidates[i]))
        keep = order[: self.max_features]
        self.names = [candidates[i] for i in keep]
        m = m[:, keep]
        qs = np.quantile(m, np.linspace(0, 1, self.bins + 1)[1:-1], axis=0).T if len(m) else m.T
        edges = np.full((len(self.names), self.bins - 1), np.inf, np.float32)
        for i, row in enumerate(qs):
            u = np.unique(row)
            edges[i, : len(u)] = u
        self.edges = edges
        self.ref = self.win = np.zeros((len(self.names), self.bins - 1), np.int32)
        self.ref_sum = self.win_sum = np.zeros(len(self.names))

    def _matrix(self, buf: list[Vector], names: list[str] | None = None) -> np.ndarray:
        names = self.names if names is None else names
        k = len(names)
        try:
            m = np.fromiter(chain.from_iterable(_rows(buf, names)), np.float64, len(buf) * k)
        except (TypeError, ValueError):  # a non-number slipped into a vector: count it as 0
            m = np.array([_num(v) for x in buf for v in map(x.get, names, [0.0] * k)])
        return np.nan_to_num(m.reshape(len(buf), k), nan=0.0, posinf=0.0, neginf=0.0)

    def _exceed(self, m: np.ndarray) -> np.ndarray:
        """Per feature and bin edge, how many values lie above it (1 - the CDF, unscaled)."""
        assert self.edges is not None
        return (m[:, :, None] > self.edges[None, :, :]).sum(0, dtype=np.int32)

    def _test(self) -> list[Shift]:
        n, w = self.ref_n, self.win_n
        stat = np.abs(self.ref / n - self.win / w).max(1, initial=0.0)
        en = np.sqrt(n * w / (n + w))
        p = kolmogorov((en + 0.12 + 0.11 / en) * stat)  # Stephens' small-sample form
        hit = (p < self.alpha / max(1, len(self.names))) & (stat >= self.min_statistic)
        order = np.argsort(-stat, kind="stable")
        keep = [i for rank, i in enumerate(order) if rank < 3 or hit[i]]
        shifts = [Shift(self.names[i], float(stat[i]), float(p[i]), float(self.ref_sum[i] / n),
                        float(self.win_sum[i] / w), self.seen) for i in keep]
        found = [s for s, i in zip(shifts, keep) if hit[i]]
        self.checked_at = self.seen
        self.win = np.zeros_like(self.ref)
        self.win_sum, self.win_n = np.zeros_like(self.ref_sum), 0
        if found:
            self.drifts += 1
            self.status, self.report = "drift", found
            self._restart()  # the new normal becomes the reference
        else:
            self.status, self.report = "stable", shifts[:3]
        return found

    def state(self) -> dict[str, Any]:
        """What `GET /v1/models` shows under `input_drift`."""
        return {"state": self.status, "features": [s.to_dict() for s in self.report],
                "checked_at": self.checked_at, "drifts": self.drifts,
                "tracked_features": len(self.names), "reference_examples": self.ref_n,
                "examples": self.seen}


def _rows(buf: list[Vector], names: list[str]) -> Iterator[tuple[Any, ...]]:
    """Each vector's values of `names`, absent ones as 0 (itemgetter when all are present)."""
    zeros = [0.0] * len(names)
    get = itemgetter(*names) if len(names) > 1 else None
    for x in buf:
        if get is not None:
            try:
                yield get(x)
                continue
            except KeyError:
                pass
        yield tuple(map(x.get, names, zeros))


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0
