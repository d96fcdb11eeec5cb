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
from typing import Any

import yaml

from engine.alerts import Alert
from engine.rules import Condition, Conditions, RuleError

DAY = 86400.0


@dataclass
class Opportunity:
    id: str
    title: str
    when: Condition
    severity: str = "medium"
    cooldown_days: float = 14.0


@dataclass
class AlertRules:
    opportunities: list[Opportunity] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: Any, source: str) -> AlertRules:
        if not isinstance(doc, dict):
            raise RuleError(f"{source}: needs a mapping with 'opportunities' and 'thresholds'")
        opps = []
        for i, item in enumerate(doc.get("opportunities") or []):
            name = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
            if not isinstance(item, dict) or not item.get("when") or not item.get("id"):
                raise RuleError(f"{source}: opportunity {name}: needs 'id' and 'when'")
            opps.append(Opportunity(
                id=item["id"], title=item.get("title", item["id"]),
                when=Condition.compile(item["when"], where=f"{source}: {name}.when"),
                severity=item.get("severity", "medium"),
                cooldown_days=float(item.get("cooldown_days", 14))))
        thresholds = {k: float(v) for k, v in (doc.get("thresholds") or {}).items()}
        return cls(opps, thresholds)

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
                    type="opportunity", customer_id=customer_id, owner=owner, title=opp.title,
                    reasons=[f"rule {opp.id}: {opp.when.source}"], score=1.0, ts=ts,
                    severity=opp.severity, data={"rule": opp.id, "cooldown_days": opp.cooldown_days}))
        return out
