"""Event-time windowed sums that do not care about arrival order.

Each window keeps sums in fixed buckets (minutes for 1 h, hours for 1 d, days beyond), so the
value as of time T is the sum of the buckets that start within the window. Adding is
commutative, so live, replayed and shuffled arrival give the same figures.

>>> w = Windowed()
>>> w.add(1000.0, 2.0); w.add(500.0, 3.0)
>>> w.get("1h", 1000.0), w.get("90d", 1000.0)
((2, 5.0), (2, 5.0))
>>> w.get("1h", 1000.0 + 7200)
(0, 0.0)
"""

from __future__ import annotations

WINDOWS: dict[str, tuple[int, int]] = {  # name -> (length s, bucket s)
    "1h": (3600, 60),
    "1d": (86400, 3600),
    "7d": (7 * 86400, 86400),
    "30d": (30 * 86400, 86400),
    "90d": (90 * 86400, 86400),
}
_GRAINS = sorted({b for _, b in WINDOWS.values()})
_KEEP = {g: max(length for length, b in WINDOWS.values() if b == g) for g in _GRAINS}


class Windowed:
    """Counts and sums of one measure over every window in `WINDOWS`."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[int, dict[int, list[float]]] = {g: {} for g in _GRAINS}

    def add(self, ts: float, amount: float = 0.0) -> None:
        for grain, store in self.buckets.items():
            cell = store.setdefault(int(ts // grain), [0, 0.0])
            cell[0] += 1
            cell[1] += amount

    def get(self, window: str, now: float) -> tuple[int, float]:
        length, grain = WINDOWS[window]
        last = int(now // grain)
        first = last - length // grain + 1
        count, total = 0, 0.0
        for idx, (c, a) in self.buckets[grain].items():
            if first <= idx <= last:
                count += int(c)
                total += a
        return count, round(total, 6)

    def prune(self, now: float) -> None:
        """Drop buckets that no window can reach any more."""
        for grain, store in self.buckets.items():
            oldest = int((now - _KEEP[grain]) // grain)
            for idx in [i for i in store if i < oldest]:
                del store[idx]
