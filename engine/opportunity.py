"""Opportunity alerts and alert thresholds from `rules/alerts.yaml`.

>>> rules = AlertRules.parse({"opportunities": [{"id": "big", "title": "Big spender",
...     "when": "features.total_spend >= 1000"}]}, "alerts.yaml")
>>> [a.title for a in rules.opportunities_for("c1", "rep1", {"features": {"total_spend": 1500}}, 0.0)]
['Big spender']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.alerts import SEVERITIES, Alert
from engine.rules import Condition, Conditions, RuleError, first_error, given

DAY = 86400.0
RuleType = Literal["opportunity", "churn_risk", "customer_drift"]  # the alert types a rule may raise


class _Rule(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Annotated[str, Field(min_length=1, coerce_numbers_to_str=True)]
    when: Annotated[str, Field(min_length=1)]
    title: str | None = None  # the id when missing
    severity: str = "medium"
    cooldown_days: Annotated[float, Field(ge=0)] = 14.0
    type: RuleType = "opportunity"

    @field_validator("severity")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SEVERITIES:
            raise ValueError(f"{value!r} is not one of {', '.join(SEVERITIES)}")
        return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="allow")

    opportunities: list[Any] = []  # each validated as a `_Rule`, for a message naming it
    thresholds: dict[str, float] = {}


@dataclass
class Opportunity:
    id: str
    title: str
    when: Condition
    severity: str = "medium"
    cooldown_days: float = 14.0
    type: str = "opportunity"


@dataclass
class AlertRules:
    opportunities: list[Opportunity] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Any, source: str) -> AlertRules:
        """Validated as a whole: any mistake is a `RuleError` naming the rule and the field
        (the flow keeps its last good rules on one), never another exception."""
        if not isinstance(doc, dict):
            raise RuleError(f"{source}: needs a mapping with 'opportunities' and 'thresholds'")
        try:
            spec = _Spec.model_validate(given(doc))
        except ValidationError as exc:
            raise RuleError(f"{source}: {first_error(exc, 'file')}") from None
        opps = []
        for i, item in enumerate(spec.opportunities):
            if not isinstance(item, dict):
                raise RuleError(f"{source}: opportunity #{i}: needs a mapping with 'id' and 'when'")
            name = item.get("id", f"#{i}")
            try:
                rule = _Rule.model_validate(item)
            except ValidationError as exc:
                raise RuleError(f"{source}: opportunity {name}: {first_error(exc, 'rule')}") from None
            opps.append(Opportunity(
                id=rule.id, title=rule.title or rule.id,
                when=Condition.compile(rule.when, where=f"{source}: {name}.when"),
                severity=rule.severity, cooldown_days=rule.cooldown_days, type=rule.type))
        if dupes := sorted({o.id for o in opps if sum(p.id == o.id for p in opps) > 1}):
            raise RuleError(f"{source}: duplicate opportunity ids {dupes}")  # cooldowns are per id
        return cls(opps, spec.thresholds)

    @classmethod
    def load(cls, path: Path) -> AlertRules:
        try:
            return cls.parse(yaml.safe_load(path.read_text()) or {}, path.name)
        except (OSError, yaml.YAMLError) as exc:
            raise RuleError(f"{path.name}: cannot read: {exc}") from exc

    @functools.cached_property
    def _tests(self) -> Conditions:
        """Every rule's `when`, tested in one evaluation."""
        return Conditions([o.when for o in self.opportunities])

    @functools.cached_property
    def wants_offer_scores(self) -> bool:
        """Some rule reads offer propensities (`scores.offers.<offer id>`): worth computing
        (asked once per customer per batch; the rules do not change once loaded)."""
        return any("scores.offers" in o.when.source for o in self.opportunities)

    def opportunities_for(self, customer_id: str, owner: str | None, data: dict[str, Any],
                          ts: float) -> list[Alert]:
        out = []
        for opp, holds in zip(self.opportunities, self._tests.test(data)):
            if holds:
                out.append(Alert(
                    type=opp.type, customer_id=customer_id, owner=owner, title=opp.title,
                    reasons=[f"rule {opp.id}: {opp.when.source}"], score=1.0, ts=ts,
                    severity=opp.severity, data={"rule": opp.id, "cooldown_days": opp.cooldown_days}))
        return out
