"""Event-time windowed counts and sums that do not care about arrival order, kept incrementally.

Each window keeps sums in fixed buckets (minutes for 1 h, hours for 1 d, days beyond), so the
value as of time T is the sum of the buckets that start within the window. Amounts are held as
integers (1/10000 currency units), so sums are exact and any arrival order (live, replayed,
shuffled) gives the same figures to the last digit.

Reading is incremental: the running sum of each window is kept aligned to the latest bucket
read; moving the clock forward subtracts the buckets that left and adds the ones that entered,
and adding an event inside the aligned range adds to the sums directly. A read costs a few list
lookups instead of a scan of every bucket.

>>> w = Windowed()
>>> w.add(1000.0, 2.0); w.add(500.0, 3.0)
>>> w.get("1h", 1000.0), w.get("90d", 1000.0)
((2, 5.0), (2, 5.0))
>>> w.get("1h", 1000.0 + 7200)
(0, 0.0)
>>> w.add(1500.0, 0.25); w.get("1d", 1000.0 + 7200)
(3, 5.25)
"""

from __future__ import annotations

from typing import Any

WINDOWS: dict[str, tuple[int, int]] = {  # name -> (length s, bucket s)
    "1h": (3600, 60),
    "1d": (86400, 3600),
    "7d": (7 * 86400, 86400),
    "30d": (30 * 86400, 86400),
    "90d": (90 * 86400, 86400),
}
SCALE = 10_000  # amounts in 1/10000 units: integer sums are exact in any order
# (name, buckets in the window, bucket length s), in WINDOWS order
SPEC = tuple((name, length // grain, grain) for name, (length, grain) in WINDOWS.items())
GRAINS = tuple(sorted({grain for _, _, grain in SPEC}))
_KEEP = {g: max(n for _, n, grain in SPEC if grain == g) for g in GRAINS}  # buckets worth holding
_BY_GRAIN = {g: tuple(k for k, (_, _, grain) in enumerate(SPEC) if grain == g) for g in GRAINS}
# per grain, for `Windowed.add`: (grain, buckets worth holding, ((window, its buckets), ...))
_ADD = tuple((g, _KEEP[g], tuple((k, SPEC[k][1]) for k in _BY_GRAIN[g])) for g in GRAINS)


class Windowed:
    """Counts and sums of one measure over every window in `WINDOWS`.

    Buckets are plain `{index: int}` dicts (one for counts, one for amounts, per grain): the
    garbage collector does not track dicts of ints, and a customer has a few of these, so a
    flow holding millions of customers does not pay for them at every collection.
    """

    __slots__ = ("amounts", "counts", "hi", "sums")

    def __init__(self) -> None:
        self.counts: dict[int, dict[int, int]] = {g: {} for g in GRAINS}
        self.amounts: dict[int, dict[int, int]] = {g: {} for g in GRAINS}  # 1/SCALE units
        self.hi: dict[int, int | None] = dict.fromkeys(GRAINS)  # bucket the sums are aligned to
        self.sums: list[list[int]] = [[0, 0] for _ in SPEC]      # per window: count, units

    def add(self, ts: float, amount: float = 0.0) -> None:
        units = round(amount * SCALE) if amount else 0
        his, sums = self.hi, self.sums
        for g, keep, spans in _ADD:
            i = int(ts // g)
            hi = his[g]
            if hi is not None and i <= hi - keep:
                continue  # before every window of this grain already: nothing can count it
            counts = self.counts[g]
            counts[i] = counts.get(i, 0) + 1
            if units:
                amounts = self.amounts[g]
                amounts[i] = amounts.get(i, 0) + units
            if hi is not None and i <= hi:  # inside the aligned range: into the running sums
                for k, n in spans:
                    if i > hi - n:
                        s = sums[k]
                        s[0] += 1
                        s[1] += units

    def get(self, window: str, now: float) -> tuple[int, float]:
        """(count, amount) in `window` as of `now`."""
        k = next(k for k, spec in enumerate(SPEC) if spec[0] == window)
        count, units = self.sums_at(now)[k]
        return count, units / SCALE

    def sums_at(self, now: float) -> list[list[int]]:
        """[count, amount in 1/SCALE units] of every window, in `WINDOWS` order, as of `now`.
        The running sums themselves: read, do not modify."""
        hi = self.hi
        for g in GRAINS:
            new = int(now // g)
            if hi[g] != new:
                self._align(g, new)
        return self.sums

    def _align(self, g: int, new: int) -> None:
        hi, counts, amounts = self.hi[g], self.counts[g], self.amounts[g]
        if hi is None or new < hi:  # first read, or the clock went back: sum afresh
            for k in _BY_GRAIN[g]:
                lo = new - SPEC[k][1]
                self.sums[k] = [sum(c for i, c in counts.items() if lo < i <= new),
                                sum(a for i, a in amounts.items() if lo < i <= new)]
            if hi is None:  # a restored or new state: what no window holds can go at once
                for i in [i for i in counts if i <= new - _KEEP[g]]:
                    del counts[i]
                    amounts.pop(i, None)
        else:
            entered = _sums(counts, amounts, hi, new)  # the same for every window of the grain
            for k in _BY_GRAIN[g]:
                n, s = SPEC[k][1], self.sums[k]
                if new - hi >= n:  # the window moved past all it held
                    s[0], s[1] = _sums(counts, amounts, new - n, new)
                else:
                    left = _sums(counts, amounts, hi - n, new - n)
                    s[0] += entered[0] - left[0]
                    s[1] += entered[1] - left[1]
            # drop buckets out of every window: when there are more than a window holds, or
            # when the clock moved a quarter of the longest window (a customer seen once a
            # month would otherwise keep up to _KEEP stale buckets per grain); amortised O(1)
            if len(counts) > _KEEP[g] or 4 * (new - hi) >= _KEEP[g]:
                for i in [i for i in counts if i <= new - _KEEP[g]]:
                    del counts[i]
                    amounts.pop(i, None)
        self.hi[g] = new

    def empty(self) -> bool:
        """No bucket left (every one fell out of every window): reads give zeros, and an event
        added to a new `Windowed` gives the same figures as one added here."""
        return not any(self.counts.values())

    def __getstate__(self) -> dict[str, Any]:
        return {"counts": self.counts, "amounts": self.amounts}  # sums: rebuilt on first read

    def dump(self) -> tuple[dict[int, dict[int, int]], dict[int, dict[int, int]]]:
        """Plain data for a snapshot (`CustomerState` pickles its parts as plain data)."""
        return self.counts, self.amounts

    @classmethod
    def load(cls, data: tuple[dict[int, dict[int, int]], dict[int, dict[int, int]]]) -> Windowed:
        w = cls.__new__(cls)
        w.__setstate__({"counts": data[0], "amounts": data[1]})
        return w

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # slots-only pickle of an older version: [count, amount]
            state = state[1]
        if "buckets" in state:
            old = state["buckets"]
            state = {"counts": {g: {i: int(c[0]) for i, c in b.items()} for g, b in old.items()},
                     "amounts": {g: {i: round(c[1] * SCALE) for i, c in b.items() if c[1]}
                                 for g, b in old.items()}}
        self.counts, self.amounts = state["counts"], state["amounts"]
        self.hi = dict.fromkeys(GRAINS)
        self.sums = [[0, 0] for _ in SPEC]


def _sums(counts: dict[int, int], amounts: dict[int, int], lo: int, hi: int) -> tuple[int, int]:
    """Count and amount of the buckets in (lo, hi]: by index when the range is short, else by
    scanning the buckets."""
    c = a = 0
    if hi - lo <= len(counts):
        for i in range(lo + 1, hi + 1):
            if i in counts:
                c += counts[i]
                a += amounts.get(i, 0)
    else:
        for i, v in counts.items():
            if lo < i <= hi:
                c += v
                a += amounts.get(i, 0)
    return c, a
