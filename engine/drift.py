"""Customer drift: a customer's behaviour leaving their own baseline.

Two signals, each against the customer's own history, in event time:

- rhythm: a customer who bought on at least `MIN_DAYS` distinct days has a rhythm of their own
  (the gaps between their purchase days: mean and regularity); a silence that rhythm makes
  improbable is a break. How improbable: the chance of so long a gap, with the customer's
  gaps as a gamma renewal process whose rate is itself uncertain from the gaps seen (so the
  predictive gap is beta-prime), is below `ALPHA_MONTH` per month of their usual gaps. A
  fixed "3x the mean gap" flagged ~5% of the gaps of a customer who buys at random times
  (Poisson), about 1.4 false alerts per steady customer-year in `./nb bench alerts`; this
  keeps false alerts near `ALPHA_MONTH` per steady customer-month whether the customer is
  regular (a weekly buyer with 5 regular gaps: 21 days) or not (weekly at random: ~40 days).
  Silence is noticed as the clock advances: the flow schedules a tick for the moment the
  silence would become abnormal (`watch_deadline`), so no new event from the customer is needed.
- spend: the mean ticket of the last 30 days falls below `SPEND_DROP` of the customer's mean
  ticket before them (at least 2 purchases in the window and `MIN_DAYS` before it).
- service sentiment: the short-term (7-day) decayed call sentiment falls well below the long-term
  (90-day) one; or angry calls surge: `SURGE_CALLS` or more in 30 days, at least twice the
  customer's rate of the 60 days before, with a 7-day sentiment under `ANGRY`. The long mean
  alone follows a customer with few past calls down within two or three angry calls, so the
  drop rarely reached `SENTIMENT_DROP` for them (`./nb bench alerts` found a fifth of the
  planted sentiment drifters).

>>> alert = rhythm_break("c1", "rep1", purchase_days={0, 7, 14, 21, 28}, now_day=70.0, value=500.0, ts=0.0)
>>> alert.type, alert.reasons[0]
('customer_drift', 'no purchase for 42 days; usually every 7.0 days (5 purchase days; unusual after 23)')
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

from scipy.special import betaincinv

from engine.alerts import Alert, severity_for

DAY = 86400.0
MIN_DAYS = 4
ALPHA_MONTH = 0.01  # tolerated false rhythm alerts per steady customer-month
PRIOR_GAPS = 4.0  # regularity is trusted as if from this many Poisson gaps before the customer's
MIN_SILENCE_DAYS = 7.0
SENTIMENT_DROP = 0.5
SPEND_DROP = 0.5
VISIT_BASELINE = 20  # clicks in the 60 days before the last 30 for a visit baseline
VISIT_DROP = 0.1  # the last 30 days under this share of the usual rate is a drop (clicks come
# in bursts: at 0.25 steady simulated visitors drew 149 false alerts in ./nb bench alerts, at 0.1
# 12, with the same recall)
SURGE_CALLS = 3
ANGRY = -0.4


def usual_gap(purchase_days: set[int]) -> float | None:
    """Mean days between purchase days, once there is a baseline."""
    if len(purchase_days) < MIN_DAYS:
        return None
    return (max(purchase_days) - min(purchase_days)) / (len(purchase_days) - 1)


def silence_limit(purchase_days: set[int]) -> float | None:
    """Days of silence after the last purchase beyond which the rhythm is broken.

    >>> silence_limit({0, 7, 14, 21, 28, 35}), silence_limit({0, 1, 2, 10, 30, 31, 45})
    (21.1, 75.7)
    """
    if len(purchase_days) < MIN_DAYS:
        return None
    days = sorted(purchase_days)
    gaps = [b - a for a, b in pairwise(days)]
    return _limit(len(gaps), days[-1] - days[0], sum(g * g for g in gaps))


# Small on purpose: an uncached call costs 3.9 us (betaincinv), and each distinct purchase
# history is a new key, so a big cache only fills the flow's memory (248 B per entry by
# tracemalloc: 65,536 entries were ~16 MB, filling for minutes in the soak) for little gain;
# this covers the repeated calls of a customer's batch.
@lru_cache(maxsize=1024)
def _limit(n: int, span: int, squares: int) -> float:
    mean = span / n
    var = squares / n - mean * mean
    shape = min(10.0, mean * mean / var) if var > 1e-9 else 10.0  # 1/CV^2 of the gaps
    shape = min(10.0, max(0.5, (n * shape + PRIOR_GAPS) / (n + PRIOR_GAPS)))
    alpha = min(0.5, ALPHA_MONTH * mean / 30.44)  # per gap, from per month
    q = float(betaincinv(shape, n * shape, 1.0 - alpha))  # G/span ~ BetaPrime(shape, n*shape)
    return round(max(span * q / (1.0 - q), MIN_SILENCE_DAYS), 1)


def watch_deadline(purchase_days: set[int]) -> float | None:
    """Event time (s) at which this customer's silence would become a rhythm break."""
    limit = silence_limit(purchase_days)
    if limit is None:
        return None
    return (max(purchase_days) + limit) * DAY + 1.0


def rhythm_break(customer_id: str, owner: str | None, purchase_days: set[int], now_day: float,
                 value: float, ts: float) -> Alert | None:
    gap, limit = usual_gap(purchase_days), silence_limit(purchase_days)
    if gap is None or limit is None:
        return None
    silence = now_day - max(purchase_days)
    if silence <= limit:
        return None
    score = min(1.0, 0.5 + 0.5 * (silence - limit) / limit)
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner,
        title=f"Customer {customer_id} stopped buying",
        reasons=[(f"no purchase for {silence:.0f} days; usually every {gap:.1f} days "
                 f"({len(purchase_days)} purchase days; unusual after {limit:.0f})"),
                 f"lifetime spend {value:.2f}"],
        score=round(score, 4), ts=ts, severity=severity_for(score, value),
        data={"signal": "purchase_rhythm", "silence_days": round(silence, 2), "usual_gap_days": round(gap, 2),
              "limit_days": limit},
    )


def spend_drop(customer_id: str, owner: str | None, features: dict[str, float], ts: float,
               ) -> Alert | None:
    """The recent mean ticket against the customer's own earlier mean ticket.

    >>> f = {"purchases": 8, "total_spend": 460.0, "purchase_count_30d": 2, "purchase_amount_30d": 60.0}
    >>> spend_drop("c1", None, f, ts=0.0).reasons[0]
    'mean purchase 30.00 over the last 30 days (2 purchases), was 66.67 before'
    """
    n, total = int(features.get("purchases", 0)), float(features.get("total_spend", 0.0))
    n30, amount30 = int(features.get("purchase_count_30d", 0)), float(features.get("purchase_amount_30d", 0.0))
    if n30 < 2 or n - n30 < MIN_DAYS or total - amount30 <= 0:
        return None
    recent, before = amount30 / n30, (total - amount30) / (n - n30)
    if recent >= SPEND_DROP * before:
        return None
    score = min(1.0, 0.5 + (1.0 - recent / before) / 2)
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner,
        title=f"Spend of {customer_id} dropped",
        reasons=[(f"mean purchase {recent:.2f} over the last 30 days ({n30} purchases), "
                 f"was {before:.2f} before")],
        score=round(score, 4), ts=ts, severity=severity_for(score, total),
        data={"signal": "spend", "from": round(before, 2), "to": round(recent, 2)},
    )


def visits_drop(customer_id: str, owner: str | None, features: dict[str, float], value: float,
                ts: float) -> Alert | None:
    """Visits (clicks) over the last 30 days against the customer's own rate over the 60 days
    before: a regular visitor who all but stopped coming. Needs a baseline of `VISIT_BASELINE`
    clicks in those 60 days.

    >>> f = {"click_count_30d": 2, "click_count_90d": 62}
    >>> visits_drop("c1", None, f, 0.0, ts=0.0).reasons[0]
    'visits fell to 2 in the last 30 days, from about 30 per 30 days before'
    """
    recent = float(features.get("click_count_30d", 0))
    before = float(features.get("click_count_90d", 0)) - recent
    usual = before / 2.0  # per 30 days, over the 60 days before the last 30
    if before < VISIT_BASELINE or recent >= VISIT_DROP * usual:
        return None
    score = min(1.0, 0.5 + (1.0 - recent / usual) / 2)
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner,
        title=f"Visits of {customer_id} dropped",
        reasons=[f"visits fell to {recent:.0f} in the last 30 days, from about {usual:.0f} per "
                 f"30 days before"],
        score=round(score, 4), ts=ts, severity=severity_for(score, value),
        data={"signal": "visits", "from": round(usual, 1), "to": recent},
    )


def sentiment_drop(customer_id: str, owner: str | None, short: float, long: float,
                   calls_30d: int, value: float, ts: float, calls_90d: int | None = None,
                   ) -> Alert | None:
    dropped = calls_30d >= 2 and long - short >= SENTIMENT_DROP
    surge = (calls_90d is not None and calls_30d >= SURGE_CALLS and short <= ANGRY
             and calls_30d >= calls_90d - calls_30d)  # 30-day rate >= 2x the 60 days before
    if not (dropped or surge):
        return None
    score = min(1.0, max(long - short, -short) / 1.5 + 0.3)
    reasons = [(f"call sentiment fell from {long:+.2f} (90-day) to {short:+.2f} (7-day) "
               f"over {calls_30d} calls in 30 days")]
    if surge and not dropped:
        reasons = [(f"{calls_30d} calls in 30 days ({calls_90d} in 90) with 7-day sentiment "
                   f"{short:+.2f}")]
    # a surge of angry calls is the signal, whichever way sentiment drifted in the meantime
    title = f"Service sentiment of {customer_id} dropped" if dropped else \
        f"Angry calls from {customer_id} surging"
    return Alert(
        type="customer_drift", customer_id=customer_id, owner=owner, title=title,
        reasons=reasons, score=round(score, 4), ts=ts, severity=severity_for(score, value),
        data={"signal": "sentiment", "from": round(long, 3), "to": round(short, 3)},
    )
