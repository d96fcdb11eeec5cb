"""Customer drift: a customer's behaviour leaving their own baseline.

Two signals, each against the customer's own history, in event time:

- rhythm: a customer who bought on at least `MIN_DAYS` distinct days has a usual gap between
  purchases; silence longer than `FACTOR` times that gap (and at least `MIN_SILENCE_DAYS`) is a
  break. Silence is noticed as the clock advances: the flow schedules a tick for the moment the
  silence would become abnormal (`watch_deadline`), so no new event from the customer is needed.
- service sentiment: the short-term (7-day) decayed call sentiment falls well below the long-term
  (90-day) one.

>>> alert = rhythm_break("c1", "rep1", purchase_days={0, 7, 14, 21, 28}, now_day=70.0, value=500.0, ts=0.0)
>>> alert.type, alert.reasons[0]
('customer_drift', 'no purchase for 42 days; usually every 7.0 days (5 purchase days)')
"""

from __future__ import annotations

from engine.alerts import Alert, severity_for

DAY = 86400.0
MIN_DAYS = 4
FACTOR = 3.0
MIN_SILENCE_DAYS = 7.0
SENTIMENT_DROP = 0.5


def usual_gap(purchase_days: set[int]) -> float | None:
    """Mean days between purchase days, once there is a baseline."""
    if len(purchase_days) < MIN_DAYS:
        return None
    return (max(purchase_days) - min(purchase_days)) / (len(purchase_days) - 1)


def watch_deadline(purchase_days: set[int]) -> float | None:
    """Event time (s) at which this customer's silence would become a rhythm break."""
    gap = usual_gap(purchase_days)
    if gap is None:
        return None
    return (max(purchase_days) + max(FACTOR * gap, MIN_SILENCE_DAYS)) * DAY + 1.0


def rhythm_break(customer_id: str, owner: str | None, purchase_days: set[int], now_day: float,
                 value: float, ts: float) -> Alert | None:
    gap = usual_gap(purchase_days)
    if gap is None:
        return None
    silence = now_day - max(purchase_days)
    limit = max(FACTOR * gap, MIN_SILENCE_DAYS)
    if silence <= limit:
        return None
    score = min(1.0, 0.5 + 0.5 * (silence - limit) / limit)
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner,
        title=f"Customer {customer_id} stopped buying",
        reasons=[f"no purchase for {silence:.0f} days; usually every {gap:.1f} days "
                 f"({len(purchase_days)} purchase days)",
                 f"lifetime spend {value:.2f}"],
        score=round(score, 4), ts=ts, severity=severity_for(score, value),
        data={"signal": "purchase_rhythm", "silence_days": round(silence, 2), "usual_gap_days": round(gap, 2)},
    )


def sentiment_drop(customer_id: str, owner: str | None, short: float, long: float,
                   calls_30d: int, value: float, ts: float) -> Alert | None:
    if calls_30d < 2 or long - short < SENTIMENT_DROP:
        return None
    score = min(1.0, (long - short) / 1.5 + 0.3)
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner,
        title=f"Service sentiment of {customer_id} dropped",
        reasons=[f"call sentiment fell from {long:+.2f} (90-day) to {short:+.2f} (7-day) "
                 f"over {calls_30d} calls in 30 days"],
        score=round(score, 4), ts=ts, severity=severity_for(score, value),
        data={"signal": "sentiment", "from": round(long, 3), "to": round(short, 3)},
    )
