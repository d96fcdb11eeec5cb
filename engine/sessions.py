"""Web and app sessions of one customer, in event time, whatever the arrival order.

A click that names its `session_id` belongs to that session; a click without one belongs to the
run of clicks separated by at most `GAP` (30 minutes) of inactivity. Both are kept as
`[start, end, clicks]`. Gap sessions are merged as clicks arrive (a late click can bridge two
sessions into one), so the result is the same set of sessions for any order.

Sessions whose end is older than the retention (the longest session feature, plus the lateness
bound) are dropped: no feature reads them and no on-time click can reach them. The summary is
remembered for as long as it cannot change (until a session starts earlier, or leaves or enters
a window), so a click that extends a session costs a few list operations.

>>> s = Sessions()
>>> for ts in (0, 600, 4000, 1200):  # the last one arrives late
...     s.add(ts)
>>> s.gap_runs
[[0.0, 1200.0, 3], [4000.0, 4000.0, 1]]
>>> s.add(2600.0); s.gap_runs  # a late click within 30 min of both joins them
[[0.0, 4000.0, 5]]
>>> s.add(100.0, session_id="x"); s.add(50.0, session_id="x"); s.by_id["x"]
[50.0, 100.0, 2]
>>> s.summary(4000.0)  # (1 d, 7 d, 30 d counts), mean length, mean clicks, latest's length
((2, 2, 2), 2025.0, 3.5, 50.0)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from math import inf
from typing import Any

DAY = 86400.0
GAP = 1800.0
RETENTION = 30 * DAY
WINDOWS = (DAY, 7 * DAY, RETENTION)  # of the session counts
MAX_SESSIONS = 500  # per kind: a bot or a broken client cannot grow the state without bound
Summary = tuple[tuple[int, int, int], float, float, float]


class Sessions:
    __slots__ = ("by_id", "gap_runs", "memo")

    def __init__(self) -> None:
        self.by_id: dict[str, list[float]] = {}
        self.gap_runs: list[list[float]] = []  # sorted by start, more than GAP apart
        self.memo: Memo | None = None

    def add(self, ts: float, session_id: str | None = None) -> None:
        ts = float(ts)
        if session_id is not None:
            run = self.by_id.get(session_id)
            if run is None:
                self.by_id[session_id] = [ts, ts, 1]
                self.memo = None
            else:
                self._extend(run, ts)
            return
        runs = self.gap_runs
        i = bisect_left(runs, [ts])  # runs[:i] start before ts
        lo = i - 1 if i > 0 and runs[i - 1][1] + GAP >= ts else i  # first run the click touches
        hi = i
        while hi < len(runs) and runs[hi][0] - GAP <= ts:
            hi += 1
        if hi - lo == 1:
            self._extend(runs[lo], ts)
            return
        self.memo = None
        if lo == hi:
            runs.insert(i, [ts, ts, 1])
            return
        merged = [min(ts, runs[lo][0]), max(ts, runs[hi - 1][1]),
                  1 + sum(r[2] for r in runs[lo:hi])]
        runs[lo:hi] = [merged]

    def _extend(self, run: list[float], ts: float) -> None:
        """A click joins an existing session. Unless it moves the start, which sessions count
        where stays the same: the remembered summary is adjusted instead of recomputed."""
        memo, end = self.memo, run[1]
        if ts < run[0]:
            run[0] = ts
            memo = self.memo = None
        run[1], run[2] = max(end, ts), run[2] + 1
        if memo is None:
            return
        if run[0] == memo.last[0] and run is not memo.last:  # the latest may have changed
            self.memo = None
        elif memo.at - RETENTION < run[0] <= memo.at:
            memo.length += run[1] - end
            memo.clicks += 1

    def prune(self, now: float, lateness: float = 0.0) -> None:
        """Forget sessions that ended before the retention; bound the count."""
        horizon = now - RETENTION - lateness - GAP
        runs = self.gap_runs
        if runs and (runs[0][1] < horizon or len(runs) > MAX_SESSIONS):  # sorted: first ends first
            self.gap_runs = [r for r in runs if r[1] >= horizon][-MAX_SESSIONS:]
            self.memo = None
        # ids are checked from the first inserted (the oldest when arrival is in order)
        if self.by_id and (len(self.by_id) > MAX_SESSIONS
                           or next(iter(self.by_id.values()))[1] < horizon):
            keep = sorted(self.by_id.items(), key=lambda kv: (kv[1][1], kv[0]))[-MAX_SESSIONS:]
            self.by_id = {k: r for k, r in keep if r[1] >= horizon}
            self.memo = None

    def __getstate__(self) -> dict[str, Any]:
        return {"by_id": self.by_id, "gap_runs": self.gap_runs}  # not the memo: derived

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.by_id, self.gap_runs, self.memo = state["by_id"], state["gap_runs"], None

    def dump(self) -> tuple[dict[str, list[float]], list[list[float]]]:
        """Plain data for a snapshot (not the memo: derived)."""
        return self.by_id, self.gap_runs

    @classmethod
    def load(cls, data: tuple[dict[str, list[float]], list[list[float]]]) -> Sessions:
        s = cls.__new__(cls)
        s.by_id, s.gap_runs, s.memo = data[0], data[1], None
        return s

    def summary(self, now: float) -> Summary:
        """As of `now`: sessions started in the last 1 d, 7 d and 30 d; over 30 d, the mean
        session length (s) and mean clicks per session; the latest session's length."""
        memo = self.memo
        if memo is None or not memo.lo <= now < memo.hi:
            memo = self.memo = self._which(now)
        n = memo.counts[2]
        if not n:
            return memo.counts, 0.0, 0.0, 0.0
        return memo.counts, memo.length / n, memo.clicks / n, memo.last[1] - memo.last[0]

    def _which(self, now: float) -> Memo:
        """Which sessions count in which window as of `now`, and the span of `now` for which
        that holds (from the latest start or window exit before it to the next after it)."""
        runs = sorted([*self.by_id.values(), *self.gap_runs])
        starts = [r[0] for r in runs]
        cut = bisect_right(starts, now)  # runs[:cut] started by now
        lo = starts[cut - 1] if cut else -inf
        hi = starts[cut] if cut < len(starts) else inf
        counts = []
        for w in WINDOWS:  # a session counts in w while start <= now < start + w
            i = bisect_right(starts, now - w, 0, cut)
            counts.append(cut - i)
            if i < cut:
                hi = min(hi, starts[i] + w)
            if i:
                lo = max(lo, starts[i - 1] + w)
        inside = runs[cut - counts[2]:cut]
        return Memo(now, lo, hi, (counts[0], counts[1], counts[2]),
                    sum(r[1] - r[0] for r in inside), sum(r[2] for r in inside),
                    inside[-1] if inside else [-1.0, -1.0, 0])  # sorted: the latest is last


@dataclass(slots=True)
class Memo:
    """A summary and the span [lo, hi) of `now` it holds for, computed at `at`."""

    at: float
    lo: float
    hi: float
    counts: tuple[int, int, int]
    length: float
    clicks: int
    last: list[float]
