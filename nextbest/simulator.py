"""A simulated customer population with hidden tastes, for the demo and the benchmarks.

Each customer has a taste over product categories (hidden from the engine, visible only through
what they click and buy), a spend level, an account owner, and maybe a planted change: a
`churner` starts complaining and stops buying, a `drifter` stops buying silently. Acceptance of an
offer depends on the taste for the offer's category, so there is a known best offer per customer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

CATEGORIES = ("electronics", "fashion", "home", "sports", "beauty", "travel", "finance")
REASONS = ("billing", "tech_support", "sales_inquiry", "delivery")
OWNERS = tuple(f"rep{i}" for i in range(1, 6))
BASE_ACCEPT = 0.02


@dataclass
class SimCustomer:
    id: str
    taste: dict[str, float]
    spend: float
    activity: float
    owner: str
    consent: bool
    anonymous_id: str
    churner: bool = False
    drifter: bool = False
    churn_at: float | None = None
    churned: bool = False
    born: bool = False

    def p_accept(self, category: str | None) -> float:
        """The hidden truth: P(accept) of an offer in `category`."""
        t = self.taste.get(category or "", 0.0)
        p = BASE_ACCEPT + 0.75 * t ** 1.3
        return p * (0.3 if self.churned else 1.0)


@dataclass
class Population:
    size: int
    rng: random.Random
    start: float
    churn_share: float = 0.05
    drift_share: float = 0.05
    customers: list[SimCustomer] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        for i in range(self.size):
            self.customers.append(self._make(i))

    def _make(self, i: int) -> SimCustomer:
        r = self.rng
        weights = [r.gammavariate(0.3, 1.0) for _ in CATEGORIES]
        total = sum(weights) or 1.0
        taste = {c: w / total for c, w in zip(CATEGORIES, weights)}
        c = SimCustomer(
            id=f"c{i:06d}", taste=taste, spend=r.lognormvariate(3.5, 0.6),
            activity=r.uniform(0.3, 1.0), owner=r.choice(OWNERS), consent=r.random() < 0.9,
            anonymous_id=f"anon{i:06d}",
        )
        roll = r.random()
        c.churner = roll < self.churn_share
        c.drifter = self.churn_share <= roll < self.churn_share + self.drift_share
        return c

    def _id(self) -> str:
        self.seq += 1
        return f"sim-{self.seq}"

    def best_category(self, c: SimCustomer) -> str:
        return max(c.taste, key=c.taste.__getitem__)

    def onboard(self, c: SimCustomer, ts: float) -> list[dict[str, Any]]:
        c.born = True
        r = self.rng
        return [
            {"event_id": self._id(), "type": "profile", "ts": ts, "customer_id": c.id,
             "owner": c.owner, "attributes": {"age": r.randint(18, 80),
                                               "region": r.choice(["north", "south", "east", "west"]),
                                               "plan": r.choice(["basic", "plus", "premium"])}},
            {"event_id": self._id(), "type": "consent", "ts": ts, "customer_id": c.id,
             "purpose": "marketing", "granted": c.consent},
            {"event_id": self._id(), "type": "identify", "ts": ts, "customer_id": c.id,
             "anonymous_id": c.anonymous_id},
        ]

    def activity(self, c: SimCustomer, ts: float) -> list[dict[str, Any]]:
        """A burst of behaviour for one customer at event time `ts`."""
        r, out = self.rng, []
        if not c.born:
            out += self.onboard(c, ts)
        if c.churn_at is not None and ts >= c.churn_at and (c.churner or c.drifter):
            return out + self._leaving(c, ts)
        for k in range(r.randint(1, 4)):
            out.append(self.click(c, ts + k, f"s{int(ts) // 1800}"))
        if r.random() < 0.25 * c.activity:
            out.append(self.purchase(c, ts + 5))
        if r.random() < 0.05:
            out.append(self.call(c, ts + 7, r.choice(REASONS), r.uniform(-0.2, 0.8), "resolved"))
        if r.random() < 0.02:
            out.append({"event_id": self._id(), "type": "outcome", "ts": ts + 8,
                        "customer_id": c.id, "name": "churned", "value": False})
        return out

    def click(self, c: SimCustomer, ts: float, session: str) -> dict[str, Any]:
        """One click on a category drawn from the customer's taste."""
        r = self.rng
        cat = r.choices(list(c.taste), list(c.taste.values()))[0]
        action = r.choices(["product_view", "search", "add_to_cart", "page_view"], [5, 2, 1, 2])[0]
        return {"event_id": self._id(), "type": "click", "ts": ts, "customer_id": c.id,
                "channel": "web", "action": action, "category": cat,
                "product_id": f"{cat}-{r.randint(1, 30)}", "session_id": session}

    def purchase(self, c: SimCustomer, ts: float, scale: float = 1.0) -> dict[str, Any]:
        """One purchase around the customer's spend level (times `scale`)."""
        r = self.rng
        cat = r.choices(list(c.taste), list(c.taste.values()))[0]
        amount = round(c.spend * scale * r.uniform(0.5, 1.5), 2)
        return {"event_id": self._id(), "type": "transaction", "ts": ts,
                "customer_id": c.id, "kind": "purchase", "amount": amount,
                "items": [{"product_id": f"{cat}-{r.randint(1, 30)}", "category": cat,
                           "quantity": 1, "unit_price": amount}]}

    def call(self, c: SimCustomer, ts: float, reason: str, sentiment: float, outcome: str) -> dict[str, Any]:
        return {"event_id": self._id(), "type": "call", "ts": ts, "customer_id": c.id,
                "channel": "call_center", "direction": "inbound", "reason": reason,
                "duration_s": round(self.rng.uniform(60, 900), 1),
                "sentiment": round(max(-1.0, min(1.0, sentiment)), 3), "outcome": outcome}

    def _leaving(self, c: SimCustomer, ts: float) -> list[dict[str, Any]]:
        """Planted change: churners complain then leave; drifters just go quiet."""
        r = self.rng
        if c.drifter or c.churned:
            return []
        out = [self.call(c, ts, r.choice(["complaint", "billing", "cancel_request"]),
                          r.uniform(-1.0, -0.3), r.choice(["unresolved", "escalated"]))]
        if r.random() < 0.3:
            c.churned = True
            out.append({"event_id": self._id(), "type": "outcome", "ts": ts + 1,
                        "customer_id": c.id, "name": "churned", "value": True})
        return out

    def plant_changes(self, at: float) -> None:
        """From `at` on, churners and drifters change behaviour."""
        for c in self.customers:
            if c.churner or c.drifter:
                c.churn_at = at + self.rng.uniform(0, 3 * 86400)

    def pick(self) -> SimCustomer:
        c = self.rng.choice(self.customers)
        while self.rng.random() > c.activity:
            c = self.rng.choice(self.customers)
        return c

    def respond(self, c: SimCustomer, category: str | None) -> bool:
        return self.rng.random() < c.p_accept(category)


def expected_random(c: SimCustomer, categories: list[str | None]) -> float:
    """Acceptance rate a uniformly random choice among `categories` would get."""
    return sum(c.p_accept(cat) for cat in categories) / len(categories) if categories else 0.0


def oracle(c: SimCustomer, categories: list[str | None]) -> float:
    return max((c.p_accept(cat) for cat in categories), default=0.0)


def log_odds(p: float) -> float:
    return math.log(p / (1 - p))
