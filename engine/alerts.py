"""Alert rules over a customer's state: who needs a person's attention, and why.

Each rule returns `Alert`s; `Cooldown` suppresses repeats per customer and type.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("low", "medium", "high", "critical")
TYPES = ("churn_risk", "customer_drift", "opportunity", "model_drift")  # every type raised


@dataclass
class Alert:
    type: str
    customer_id: str | None
    owner: str | None
    title: str
    reasons: list[str]
    score: float
    ts: float
    severity: str = "medium"
    status: str = "open"
    alert_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.alert_id:
            # deterministic: a replay raises the same alert id, so delivery can deduplicate
            basis = f"{self.type}|{self.customer_id}|{self.ts:.3f}|{self.title}"
            self.alert_id = hashlib.blake2b(basis.encode(), digest_size=10).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def severity_for(score: float, value: float, top_value: float = 1000.0) -> str:
    """Severity grows with the score and with what the customer is worth.

    >>> severity_for(0.9, 5000.0), severity_for(0.65, 20.0)
    ('critical', 'low')
    """
    weight = min(1.0, value / top_value) if top_value > 0 else 0.0
    urgency = score * (0.5 + 0.5 * weight)
    if urgency >= 0.75:
        return "critical"
    if urgency >= 0.55:
        return "high"
    if urgency >= 0.4:
        return "medium"
    return "low"


class Cooldown:
    """Remembers when each alert type last fired for a customer (event time)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def allow(self, kind: str, ts: float, cooldown_s: float) -> bool:
        prev = self.last.get(kind)
        if prev is not None and ts - prev < cooldown_s:
            return False
        self.last[kind] = ts
        return True


def churn_alert(
    customer_id: str, owner: str | None, churn: float, previous: float | None,
    threshold: float, value: float, ts: float,
) -> Alert | None:
    """Raised when the churn score crosses `threshold` upwards."""
    if churn < threshold or (previous is not None and previous >= threshold):
        return None
    before = "unknown" if previous is None else f"{previous:.2f}"
    return Alert(
        type="churn_risk", customer_id=customer_id, owner=owner,
        title=f"Churn risk {churn:.0%} for customer {customer_id}",
        reasons=[f"churn score rose from {before} to {churn:.2f} (threshold {threshold:.2f})",
                 f"customer value {value:.2f}"],
        score=round(churn, 4), ts=ts, severity=severity_for(churn, value),
    )


def alive_alert(customer_id: str, owner: str | None, p_alive: float, threshold: float,
                silence_days: float, value: float, ts: float) -> Alert | None:
    """Raised when the probability that a repeat buyer is still active falls under `threshold`
    (BG/NBD over the population): a churn signal that needs no churn labels.

    >>> [alive_alert("c1", "rep", 0.2, 0.3, 60.0, v, 0.0).severity for v in (2500.0, 20.0)]
    ['critical', 'medium']
    """
    if p_alive >= threshold:
        return None
    score = round(1.0 - p_alive, 4)
    return Alert(
        type="churn_risk", customer_id=customer_id, owner=owner,
        title=f"Customer {customer_id} may have stopped buying (p_alive {p_alive:.0%})",
        reasons=[(f"probability of still being an active customer fell to {p_alive:.2f} "
                  f"(threshold {threshold:.2f}) after {silence_days:.0f} days without a purchase"),
                 f"lifetime spend {value:.2f}"],
        score=score, ts=ts, severity=severity_for(score, value),
        data={"signal": "p_alive", "p_alive": round(p_alive, 4)},
    )
