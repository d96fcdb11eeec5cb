"""The decision: which offers or actions, in which order, for this customer now.

Steps: candidates (request filter, channel, validity) -> consent gate -> conditions
(eligible, applicable, suitable) -> control group hold-out -> score (propensity x value x lever)
-> consistency (the `lead` served moments ago, if still a candidate, leads again) or exploration
(Thompson sampling or epsilon-greedy, with the probability of the served choice logged)
-> top `limit`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from engine import consent
from engine.catalog import Catalog, Offer
from engine.models import OnlineModel
from engine.scoring import LinearScorer
from engine.types import Vector


@dataclass
class Profile:
    """What the decision knows about the customer (read from Redis)."""

    customer_id: str
    features: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, bool] = field(default_factory=dict)
    known: bool = False


@dataclass
class Request:
    channel: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    limit: int = 1
    offers: list[str] | None = None


@dataclass
class Scored:
    offer: Offer
    propensity: float
    score: float
    notes: list[str]  # how it came first (consistency, exploration, the Thompson draw)
    learned: bool

    @property
    def reasons(self) -> list[str]:
        """Why this score, for the offers a decision returns: formatted only for those (three
        strings for each of 20 candidates were ~35 us of a decision, for one or two shown)."""
        return [f"propensity {self.propensity:.3f}" + ("" if self.learned else " (prior, not yet learned)"),
                f"value {self.offer.value:g}", f"lever {self.offer.lever:g}", *self.notes]


@dataclass
class Decision:
    ranked: list[Scored]
    explored: bool
    probability: float          # probability that the policy served ranked[0] first
    held_out: list[str]         # offers withheld for the control group
    rejected: dict[str, str]    # offer id -> why it was not a candidate
    x: Vector
    candidates: list[Scored] = field(default_factory=list)  # every scored candidate


def in_control(customer_id: str, offer: Offer, share: float) -> bool:
    """Stable per customer and offer: the same customer is always in or out.

    >>> in_control("c1", Offer(id="o"), 0.0), in_control("c1", Offer(id="o"), 1.0)
    (False, True)
    """
    share = offer.control if offer.control is not None else share
    digest = hashlib.blake2b(f"{offer.id}|{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def rule_data(profile: Profile, request: Request) -> dict[str, Any]:
    return {
        "features": profile.features,
        "attributes": profile.attributes,
        "scores": profile.scores,
        "context": {**request.context, "channel": request.channel},
        "customer": {"id": profile.customer_id, "known": profile.known},
    }


def candidates(
    catalog: Catalog, profile: Profile, request: Request, now: float,
    blocked: dict[str, str] | None = None,
) -> tuple[list[Offer], dict[str, str]]:
    """Offers that may be shown, and why each other one may not."""
    data = rule_data(profile, request)
    marketing_ok = consent.for_decision(profile.consent, "marketing", request.channel, request.context) is True
    wanted = set(request.offers) if request.offers is not None else None
    keep, rejected = [], dict(blocked or {})
    failing = catalog.failing(data)
    for offer in catalog.offers:
        if offer.id in rejected:
            continue
        if wanted is not None and offer.id not in wanted:
            continue
        if not offer.available(request.channel, now):
            rejected[offer.id] = "channel or validity"
        elif offer.marketing and not marketing_ok:
            rejected[offer.id] = "no marketing consent"
        elif offer.id in failing:
            rejected[offer.id] = f"{failing[offer.id]} condition false"
        else:
            keep.append(offer)
    for offer_id in (wanted or set()) - catalog.by_id.keys():  # a typo, or an offer retired
        rejected[offer_id] = "not in the catalog"
    return keep, rejected


PRIOR_WEIGHT = 8.0  # examples' worth of belief in the catalog's prior


def propensity(offer: Offer, model: OnlineModel | None, x: Vector,
               predicted: float | None = None) -> float:
    """The model's P(accept) (`predicted` when already computed for `x`), shrunk towards the
    offer's prior while it has few examples.

    >>> propensity(Offer(id="o", prior=0.1), None, {})
    0.1
    """
    if model is None or model.examples == 0:
        return offer.prior
    n = float(model.examples)
    p = model.predict_one(x) if predicted is None else predicted
    return (n * p + PRIOR_WEIGHT * offer.prior) / (n + PRIOR_WEIGHT)


def score(offer: Offer, model: OnlineModel | None, x: Vector,
          predicted: float | None = None) -> Scored:
    learned = model is not None and model.examples > 0
    p = propensity(offer, model, x, predicted)
    value = offer.value or 1.0
    return Scored(offer, p, p * value * offer.lever, [], learned)


def decide(
    catalog: Catalog, models: dict[str, OnlineModel], profile: Profile, request: Request,
    x: Vector, now: float, rng: random.Random, epsilon: float, control_share: float,
    blocked: dict[str, str] | None = None, exploration: str = "thompson",
    lead: str | None = None, scorer: LinearScorer | None = None,
) -> Decision:
    """`scorer` (built from `models`) scores every offer model in one go (engine/scoring.py).

    The control group of an offer is held out where the offer would have been served: the
    ranking is made with it, and a marketing offer in a served place whose customer is in its
    control group is withheld (`held_out`), the next one taking the place. Holding out every
    eligible customer compared those the engine chose with everyone it could have chosen,
    and showed uplift where the offers had none."""
    offers, rejected = candidates(catalog, profile, request, now, blocked)
    control = {o.id for o in offers if o.marketing and in_control(profile.customer_id, o, control_share)}
    predicted = scorer.predict(x) if scorer is not None and offers else {}
    scored = [score(o, models.get(o.id), x, predicted.get(o.id)) for o in offers]
    scored.sort(key=lambda s: -s.score)
    if not scored:
        return Decision([], False, 1.0, [], rejected, x)
    pinned = next((s for s in scored if s.offer.id == lead and s.offer.id not in control), None)
    if pinned is not None:  # the same answer on every channel, moments apart
        scored.remove(pinned)
        pinned.notes.append("consistency: leading offer of this customer's last decision")
        return _served([pinned] + scored, control, request, False, 1.0, rejected, x)
    free = [s for s in scored if s.offer.id not in control]
    if not free:  # held out from each, as each would have taken the place of the one before
        return _served(scored, control, request, False, 1.0, rejected, x)
    if exploration == "thompson":
        return _thompson(scored, control, models, request, rejected, x, rng)
    k = len(free)
    explored = k > 1 and rng.random() < epsilon
    pick = free[rng.randrange(k)] if explored else free[0]
    if explored:
        pick.notes.append("exploration")
    probability = epsilon / k + ((1 - epsilon) if pick is free[0] else 0.0)
    # an explored pick is served first, and no control offer is held out for it
    ranked = [pick] + [s for s in free if s is not pick] if explored else scored
    return _served(ranked, control, request, explored, probability, rejected, x)


def _served(ranked: list[Scored], control: set[str], request: Request, explored: bool,
            probability: float, rejected: dict[str, str], x: Vector,
            held: list[str] | None = None) -> Decision:
    """The first `limit` offers of `ranked` not in the control group, and the control offers
    ranked above the last of them (`held`: those already found held out ahead of `ranked`)."""
    served, held = [], list(held or [])
    for s in ranked:
        if len(served) >= max(1, request.limit):
            break
        if s.offer.id in control:
            held.append(s.offer.id)
        else:
            served.append(s)
    return Decision(served, explored, probability, held, rejected, x, candidates=ranked)


THOMPSON_DRAWS = 32
_generators: dict[int, Any] = {}


def _numpy_rng(rng: random.Random) -> Any:
    """A numpy generator derived once from the caller's `rng` (creating one costs ~100 us)."""
    import numpy as np

    gen = _generators.get(id(rng))
    if gen is None:
        if len(_generators) > 64:
            _generators.clear()
        gen = _generators[id(rng)] = np.random.default_rng(rng.getrandbits(64))
    return gen


def _thompson(scored: list[Scored], control: set[str], models: dict[str, OnlineModel],
              request: Request, rejected: dict[str, str], x: Vector, rng: random.Random) -> Decision:
    """Thompson sampling over the propensities: each offer's P(accept) is drawn from a Beta
    centred on the model's estimate, as wide as the examples behind it are few; the served
    offer is the best draw x value x lever outside the control group, and a control offer
    whose draw beat it is held out. Its probability of being served is estimated from
    `THOMPSON_DRAWS` further draws, for off-policy evaluation."""
    import numpy as np

    gen = _numpy_rng(rng)
    p = np.array([s.propensity for s in scored])
    n = np.array([min(_examples(models, s.offer.id), 500) + PRIOR_WEIGHT for s in scored], float)
    worth = np.array([(s.offer.value or 1.0) * s.offer.lever for s in scored])
    draws = gen.beta(p * n + 1.0, (1.0 - p) * n + 1.0, size=(THOMPSON_DRAWS + 1, len(scored)))
    value = draws * worth
    held_back = np.array([s.offer.id in control for s in scored])
    best = np.where(held_back, -1.0, value).argmax(axis=1)
    pick = int(best[0])
    probability = float((best[1:] == pick).mean()) or 1.0 / THOMPSON_DRAWS
    explored = pick != int(np.argmin(held_back))  # not the first outside the control group
    first = scored[pick]
    first.notes.append(f"thompson draw {draws[0, pick]:.3f}" + (" (exploring)" if explored else ""))
    beaten = [s.offer.id for i, s in enumerate(scored) if held_back[i] and value[0, i] > value[0, pick]]
    rest = [s for s in scored if s is not first and s.offer.id not in beaten]
    return _served([first] + rest, control, request, explored, round(probability, 4), rejected,
                   x, held=beaten)


def _examples(models: dict[str, OnlineModel], offer_id: str) -> int:
    m = models.get(offer_id)
    return m.examples if m is not None else 0
