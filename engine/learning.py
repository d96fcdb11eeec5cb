"""The model side of the loop: one `ModelState` per model name, fed examples and impressions.

Offer models also count what the offer did (impressions, accepts, revenue, control group), so
the figures are exactly-once with the model in bytewax's snapshots.

`apply` says which drift a model showed ("quality": ADWIN on its errors; "inputs": features that
left their reference) and `drift_alert` turns that into a `model_drift` alert for the admins.
Quality alerts are held back for `QUALITY_COOLDOWN` examples after one (ADWIN may fire again
while it settles); input drift has its own cooldown (the reference is rebuilt after a drift).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from engine.alerts import Alert
from engine.models import OnlineModel, pipeline_for
from engine.uplift import uplift


@dataclass
class OfferStats:
    impressions: int = 0
    control: int = 0
    accepted: int = 0
    rejected: int = 0
    ignored: int = 0
    late: int = 0
    revenue: float = 0.0
    external: int = 0  # answers to offers made outside the engine (`engine.responses`)
    external_accepted: int = 0
    external_revenue: float = 0.0
    treated: int = 0
    treated_conv: int = 0
    control_exposed: int = 0
    control_conv: int = 0

    def to_dict(self) -> dict[str, Any]:
        shown = self.impressions
        return {
            "impressions": shown, "control_impressions": self.control,
            "accepted": self.accepted, "rejected": self.rejected, "ignored": self.ignored,
            "late_feedback": self.late, "revenue": round(self.revenue, 2),
            "external_feedback": {"responses": self.external, "accepted": self.external_accepted,
                                  "revenue": round(self.external_revenue, 2)},
            "acceptance_rate": round(self.accepted / shown, 4) if shown else None,
            "conversion": uplift(self.treated, self.treated_conv, self.control_exposed,
                                 self.control_conv),
        }


@dataclass
class ModelState:
    model: OnlineModel
    stats: OfferStats = field(default_factory=OfferStats)
    published: int = -1
    published_version: int = -1  # the model version last published with its weights
    published_at: float = 0.0  # wall time of the last publish
    meta_at: float = 0.0  # wall time of the last publish of either kind
    changes: int = 0
    last_ts: float = 0.0
    drift_alerted_at: int | None = None

    def publishable(self) -> ModelState:
        """This state as published to the API: the model without the input-drift monitor's
        unabsorbed examples (bytewax's snapshots keep them, for exact recovery)."""
        model = dataclasses.replace(self.model, inputs=self.model.inputs.without_buffer())
        return dataclasses.replace(self, model=model)

    def meta(self) -> dict[str, Any]:
        return {"name": self.model.name, "version": self.model.version, "ts": self.last_ts,
                **self.model.quality(), "input_drift": self.model.inputs.state(),
                "performance": self.stats.to_dict()}


QUALITY_COOLDOWN = 500  # examples between two quality-drift alerts of one model


def apply(state: ModelState | None, name: str, item: tuple[Any, ...],
          ) -> tuple[ModelState, list[str]]:
    """Fold one item in; the kinds of drift it revealed ("quality", "inputs"), usually none."""
    state = state or ModelState(OnlineModel(name, pipeline=pipeline_for(name)))
    kind, fired = item[0], []
    state.changes += 1
    if kind == "example":
        _, _, x, y, ts, _extra = item
        if state.model.learn_one(x, y):
            fired.append("quality")
        if state.model.shifted:
            fired.append("inputs")
        state.last_ts = max(state.last_ts, ts)
    elif kind == "impression":
        _, _, control, _ts = item
        if control:
            state.stats.control += 1
        else:
            state.stats.impressions += 1
    elif kind == "exposure":
        if item[2]:
            state.stats.control_exposed += 1
        else:
            state.stats.treated += 1
    elif kind == "conversion":
        if item[2]:
            state.stats.control_conv += 1
        else:
            state.stats.treated_conv += 1
    elif kind == "feedback":
        _, _, outcome, value, late, _ts, *external = item
        st = state.stats
        if external:  # an offer made elsewhere: apart from the engine's own impressions
            st.external += 1
            st.external_accepted += outcome == "accepted"
            st.external_revenue += value if outcome == "accepted" else 0.0
            return state, fired
        if late:
            st.late += 1
        if outcome == "accepted":
            st.accepted += 1
            st.revenue += value
        elif not late:
            setattr(st, outcome, getattr(st, outcome) + 1)
    return state, fired


def drift_alert(state: ModelState, kind: str) -> Alert | None:
    """The `model_drift` alert for the admins, with reasons; None while in cooldown."""
    m = state.model
    if kind == "inputs":
        shifts = m.shifted
        reasons = [s.reason() for s in shifts[:5]]
        reasons.append(f"against the {m.inputs.reference} examples before; reference rebuilt")
        title = f"Model {m.name} inputs shifted: {', '.join(s.name for s in shifts[:3])}"
        data: dict[str, Any] = {"signal": "inputs", "features": [s.to_dict() for s in shifts]}
        score, severity = max(s.statistic for s in shifts), "medium"  # a warning: quality holds
    else:
        last = state.drift_alerted_at
        if last is not None and m.examples - last < QUALITY_COOLDOWN:
            return None
        state.drift_alerted_at = m.examples
        q = m.quality()
        reasons = [f"ADWIN detected a rise in the error rate after {q['examples']} examples",
                   f"progressive AUC now {q['auc']}"]
        title = f"Model {m.name} quality drifted"
        data, score, severity = {"signal": "quality", "examples": q["examples"]}, 1.0, "high"
    return Alert(type="model_drift", customer_id=None, owner="admin", severity=severity,
                 title=title, reasons=reasons, score=round(score, 4), ts=state.last_ts,
                 data={"model": m.name, **data})


PUBLISH_GAP_S = 1.0  # the time rule's wait for a young model (under `PUBLISH_YOUNG` examples)
PUBLISH_YOUNG = 100  # ... beyond which the wait grows with the examples learned
META_GAP_S = 1.0  # the longest changed figures (impressions, answers) wait to be published


def publish_gap(state: ModelState) -> float:
    """How long learned weights may wait to be published by the time rule: a second while the
    model is young, growing with its examples after (one answer's weight in it shrinks as one
    over them): 10 s at 1,000 examples. By arithmetic (not measured): a catalog of 1,000
    offers each learning every second would otherwise publish 1,000 times a second, where the
    count rule alone, at 1,000 decisions/s, published ~20; a busy model publishes by the count
    long before."""
    return PUBLISH_GAP_S * max(1.0, state.model.examples / PUBLISH_YOUNG)


def publish_at(state: ModelState) -> float | None:
    """When the weights learned, or the figures changed, since the last publish become due by
    the time rule (the flow wakes the model's key then, so they reach the API with no further
    item arriving)."""
    due = [state.published_at + publish_gap(state)] \
        if state.model.version != state.published_version else []
    if state.changes > state.published:
        due.append(state.meta_at + META_GAP_S)
    return min(due, default=None)


def to_publish(state: ModelState, every: int, now: float = 0.0) -> str | None:
    """What to publish: the first version at once; then "model" (weights and figures) when the
    model learned since and either `every` changes passed or `publish_gap` seconds of wall time
    since the last publish, else "meta" (its figures: impressions, feedback counts) every
    `every` changes; None in between. Impressions come with every decision: republishing
    unchanged weights for them made the API reload models ~20 times a second at 1,000
    decisions/s. The time rule, with the flow waking the model at `publish_at`, is what makes
    learning reach the API within a second for an offer answered rarely: a count alone left its
    weights unpublished until 50 more changes, days later.

    >>> st, _ = apply(None, "offer:o", ("impression", "offer:o", False, 0.0))
    >>> to_publish(st, 50, now=100.0), to_publish(st, 50, now=100.5)
    ('model', None)
    >>> st, _ = apply(st, "offer:o", ("example", "offer:o", {"a": 1.0}, True, 0.0, {}))
    >>> to_publish(st, 50, now=100.5), to_publish(st, 50, now=101.0)  # learned: a second on
    (None, 'model')
    >>> st.model.examples = 1000  # a mature model: one answer's weights wait up to 10 s
    >>> st, _ = apply(st, "offer:o", ("example", "offer:o", {"a": 1.0}, False, 0.0, {}))
    >>> to_publish(st, 50, now=105.0), to_publish(st, 50, now=112.0)  # its figures at once
    ('meta', 'model')
    >>> st, _ = apply(st, "offer:o", ("impression", "offer:o", False, 0.0))  # shown, unanswered
    >>> to_publish(st, 50, now=112.5), to_publish(st, 50, now=113.0)  # its figures: a second on
    (None, 'meta')

    Figures changed since the last publish wait at most `META_GAP_S` too: an offer shown a few
    times a day kept its impressions unpublished until 50 changes, and its acceptance rate
    overstated until its model learned.
    """
    due = state.changes - state.published >= every
    learned = state.model.version != state.published_version
    if state.published < 0 or (learned and (due or now - state.published_at >= publish_gap(state))):
        state.published, state.published_at, state.meta_at = state.changes, now, now
        state.published_version = state.model.version
        return "model"
    if due or (state.changes > state.published and now - state.meta_at >= META_GAP_S):
        state.published, state.meta_at = state.changes, now
        return "meta"
    return None
