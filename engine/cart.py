"""The shopping cart as the clicks and purchases tell it, in event time, whatever the order.

A product is in the cart when its latest add is later than its latest removal or purchase, and
is recent (the last `HORIZON`): last-writer-wins by event time, so any arrival order gives the
same cart. The summary is remembered for as long as it cannot change (until the next add ages
out or a future add comes into view), so reading it per event costs nothing most of the time.

>>> cart = Cart()
>>> cart.add("p1", 100.0, 20.0); cart.add("p2", 110.0, 5.0)
>>> cart.take_out("p1", 90.0)    # a removal older than the add: p1 stays
>>> cart.take_out("p2", 120.0)   # bought or removed after the add: p2 goes
>>> cart.summary(200.0)
(1, 20.0)
>>> cart.summary(100.0 + HORIZON)
(0, 0.0)
"""

from __future__ import annotations

from typing import Any

HORIZON = 30 * 86400.0


class Cart:
    __slots__ = ("added", "memo", "removed")

    def __init__(self) -> None:
        self.added: dict[str, tuple[float, float]] = {}  # product -> latest (add ts, price)
        self.removed: dict[str, float] = {}  # product -> latest removal or purchase ts
        self.memo: tuple[float, float, tuple[int, float]] | None = None

    def add(self, product: str, ts: float, price: float = 0.0) -> None:
        latest = (ts, price)
        self.added[product] = max(latest, self.added.get(product, latest))
        self.memo = None

    def take_out(self, product: str, ts: float) -> None:
        """A removal from the cart, or a purchase of the product."""
        self.removed[product] = max(ts, self.removed.get(product, ts))
        self.memo = None

    def prune(self, now: float, lateness: float) -> None:
        """Forget what no reading at `now` or later can see, once there is enough of it."""
        if len(self.added) + len(self.removed) > 32:
            horizon = now - HORIZON - lateness
            self.added = {p: v for p, v in self.added.items() if v[0] >= horizon}
            self.removed = {p: t for p, t in self.removed.items() if t >= horizon}
            self.memo = None

    def __getstate__(self) -> dict[str, Any]:
        return {"added": self.added, "removed": self.removed}  # not the memo: derived

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.added, self.removed, self.memo = state["added"], state["removed"], None

    def dump(self) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
        """Plain data for a snapshot (not the memo: derived)."""
        return self.added, self.removed

    @classmethod
    def load(cls, data: tuple[dict[str, tuple[float, float]], dict[str, float]]) -> Cart:
        cart = cls.__new__(cls)
        cart.added, cart.removed, cart.memo = data[0], data[1], None
        return cart

    def summary(self, now: float) -> tuple[int, float]:
        """(products in the cart, their total price) as of `now`."""
        memo = self.memo
        if memo is not None and memo[0] <= now < memo[1]:
            return memo[2]
        lo, hi = float("-inf"), float("inf")  # the span of `now` over which this holds
        count, value = 0, 0.0
        for product, (ts, price) in self.added.items():
            if ts <= self.removed.get(product, -1.0):
                continue
            if ts > now:
                hi = min(hi, ts)
            elif ts + HORIZON <= now:
                lo = max(lo, ts + HORIZON)
            else:
                count, value = count + 1, value + price
                lo, hi = max(lo, ts), min(hi, ts + HORIZON)
        result = (count, round(value, 4))
        self.memo = (lo, hi, result)
        return result
