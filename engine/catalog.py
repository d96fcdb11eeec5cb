"""The offer and action catalog (`rules/offers.yaml`), validated on load.

Errors name the file, the offer and the field. Conditions are compiled once here, never per
request.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.events import Channel, to_ts
from engine.rules import Condition, Conditions, RuleError, first_error

Kind = Literal["offer", "retention", "service"]
CONDITIONS = ("eligible", "applicable", "suitable")


class Offer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    # a number reads as its text, as in events: `id: 1001` (a SKU), `category: 1338`
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
                             coerce_numbers_to_str=True)]
    kind: Kind = "offer"
    title: str = ""
    value: Annotated[float, Field(ge=0)] = 0.0
    channels: list[Channel] | None = None
    eligible: str | None = None
    applicable: str | None = None
    suitable: str | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    lever: Annotated[float, Field(ge=0)] = 1.0
    control: Annotated[float, Field(ge=0, le=1)] | None = None
    reward_window_days: Annotated[float, Field(gt=0)] = 7.0
    prior: Annotated[float, Field(gt=0, lt=1)] = 0.1
    category: Annotated[str, Field(coerce_numbers_to_str=True)] | None = None
    script: str = ""

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _ts(cls, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.timestamp()
        return to_ts(value if not hasattr(value, "isoformat") else value.isoformat() + "T00:00:00+00:00")

    @property
    def marketing(self) -> bool:
        """Marketing offers need `marketing` consent; service and retention actions do not."""
        return self.kind == "offer"

    def available(self, channel: str | None, now: float) -> bool:
        if channel and self.channels is not None and channel not in self.channels:
            return False
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_to is None or now <= self.valid_to


class Catalog:
    """Offers by id, with their compiled conditions."""

    def __init__(self, offers: list[Offer], source: str = "offers.yaml") -> None:
        self.offers = offers
        self.by_id = {o.id: o for o in offers}
        if len(self.by_id) != len(offers):
            dupes = sorted({o.id for o in offers if sum(p.id == o.id for p in offers) > 1})
            raise RuleError(f"{source}: duplicate offer ids {dupes}")
        self.conditions: dict[str, dict[str, Condition]] = {
            o.id: {
                name: Condition.compile(getattr(o, name), where=f"{source}: {o.id}.{name}")
                for name in CONDITIONS
                if getattr(o, name)
            }
            for o in offers
        }
        self._names = [(oid, name) for oid, conds in self.conditions.items() for name in conds]
        self._tests = Conditions([c for conds in self.conditions.values() for c in conds.values()])

    def __len__(self) -> int:
        return len(self.offers)

    def failing(self, data: dict[str, Any]) -> dict[str, str]:
        """The first condition (in `CONDITIONS` order) that is false, per offer with one: every
        condition of the catalog in one evaluation (`rules.Conditions`)."""
        out: dict[str, str] = {}
        for (oid, name), holds in zip(self._names, self._tests.test(data)):
            if not holds and oid not in out:
                out[oid] = name
        return out

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise RuleError(f"{path.name}: cannot read: {exc}") from exc
        items = doc.get("offers") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise RuleError(f"{path.name}: needs a top-level list 'offers'")
        offers = []
        for i, item in enumerate(items):
            name = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
            try:
                offers.append(Offer.model_validate(item))
            except ValidationError as exc:
                raise RuleError(f"{path.name}: offer {name}: {first_error(exc, 'offer')}") from None
        return cls(offers, source=path.name)
