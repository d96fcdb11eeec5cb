"""Exponentially decayed sums in event time, independent of arrival order.

The sum is held at a reference time; adding an older value discounts it to the reference,
adding a newer one moves the reference forward. So any arrival order gives the same value.

>>> d = Decayed(half_life=86400.0)
>>> d.add(1.0, 0.0); d.add(1.0, 86400.0)
>>> round(d.value(86400.0), 6)
1.5
"""

from __future__ import annotations

import math

_LN2 = math.log(2)


class Decayed:
    __slots__ = ("half_life", "ref", "total")

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self.ref = 0.0
        self.total = 0.0

    def _factor(self, dt: float) -> float:
        return math.exp(-_LN2 * dt / self.half_life) if dt else 1.0

    def add(self, value: float, ts: float) -> None:
        if ts >= self.ref:
            self.total = self.total * self._factor(ts - self.ref) + value
            self.ref = ts
        else:
            self.total += value * self._factor(self.ref - ts)

    def value(self, now: float) -> float:
        return self.total * self._factor(max(0.0, now - self.ref))

    def dump(self) -> tuple[float, float, float]:
        """Plain data for a snapshot."""
        return self.half_life, self.ref, self.total

    @classmethod
    def load(cls, data: tuple[float, float, float]) -> Decayed:
        d = cls.__new__(cls)
        d.half_life, d.ref, d.total = data
        return d


class DecayedMean:
    """A decayed weighted mean (e.g. of call sentiment)."""

    __slots__ = ("den", "num")

    def __init__(self, half_life: float) -> None:
        self.num = Decayed(half_life)
        self.den = Decayed(half_life)

    def add(self, value: float, ts: float) -> None:
        self.num.add(value, ts)
        self.den.add(1.0, ts)

    def value(self, now: float, default: float = 0.0) -> float:
        den = self.den.value(now)
        return self.num.value(now) / den if den > 1e-12 else default

    def dump(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        return self.num.dump(), self.den.dump()

    @classmethod
    def load(cls, data: tuple[tuple[float, float, float], tuple[float, float, float]],
             ) -> DecayedMean:
        m = cls.__new__(cls)
        m.num, m.den = Decayed.load(data[0]), Decayed.load(data[1])
        return m
