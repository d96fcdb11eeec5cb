"""Contact policy: caps per customer over rolling windows, per channel and across channels,
a cooldown after a rejection, suppression after an acceptance, and consistency across channels.

The contact state is a small dict kept in Redis per customer (shared by all API processes):
`{"imp": [[ts, channel, kind, offer], ...], "rej": {offer: ts}, "acc": {offer: ts},
"lead": [offer, ts, channel]}`. `lead` is the leading offer last served: for
`consistency_minutes` after it, every channel leads with the same offer while it is still
allowed (consent, rules, caps, cooldowns), so the website and the agent on the phone tell the
customer the same thing; a response to it, or anything that makes it no longer a candidate, is
the material change that releases it. An offer shown again on a channel within
`same_contact_minutes` of its last showing there is the same contact: the caps count it once.

>>> p = Policy.parse({"caps": [{"name": "weekly", "kinds": ["offer"], "window_days": 7, "max": 1}]})
>>> state = record({}, [("o1", "offer")], "web", now=0.0)
>>> p.blocked(state, [("o2", "offer"), ("s1", "service")], "web", now=3600.0)
{'o2': 'contact cap weekly: 1 in 7 days'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.events import Channel
from engine.rules import RuleError, first_error, given

DAY = 86400.0
KEEP_DAYS = 31.0
KEEP_MAX = 100


_Days = Annotated[float, Field(ge=0)]


class _CapSpec(BaseModel):
    name: str | None = None  # cap<i> when missing
    window_days: Annotated[float, Field(gt=0)]
    max: Annotated[int, Field(ge=0)]
    kinds: list[str] | None = None  # None: every kind
    channels: list[Channel] | None = None  # None: every channel


class _PolicySpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    caps: list[Any] = []  # each validated as a `_CapSpec`, for a message naming it
    cooldown_after_rejection_days: _Days = 0.0
    suppress_after_acceptance_days: _Days = 0.0
    consistency_minutes: _Days = 30.0
    same_contact_minutes: _Days = 30.0


@dataclass
class Cap:
    name: str
    window_days: float
    max: int
    kinds: list[str] | None = None
    channels: list[str] | None = None

    def counts(self, kind: str, channel: str | None) -> bool:
        return ((self.kinds is None or kind in self.kinds)
                and (self.channels is None or channel in self.channels))


@dataclass
class Policy:
    caps: list[Cap] = field(default_factory=list)
    reject_cooldown_days: float = 0.0
    accept_suppress_days: float = 0.0
    consistency_minutes: float = 30.0
    same_contact_minutes: float = 30.0  # a repeat this soon on the channel is the same contact

    @classmethod
    def parse(cls, doc: Any, source: str = "policy.yaml") -> Policy:
        """Validated as a whole: any mistake is a `RuleError` naming the cap and the field (the
        API keeps its last good policy on one, and `GET /v1/status` says why)."""
        if not isinstance(doc, dict):
            raise RuleError(f"{source}: needs a mapping")
        try:
            spec = _PolicySpec.model_validate(given(doc))
        except ValidationError as exc:
            raise RuleError(f"{source}: {first_error(exc, 'policy')}") from None
        caps = []
        for i, c in enumerate(spec.caps):
            if not isinstance(c, dict):
                raise RuleError(f"{source}: cap #{i}: needs a mapping with window_days and max")
            try:
                cap = _CapSpec.model_validate(c)
            except ValidationError as exc:
                raise RuleError(f"{source}: cap #{i}: {first_error(exc, 'cap')}") from None
            caps.append(Cap(cap.name or f"cap{i}", cap.window_days, cap.max, cap.kinds,
                            cap.channels))
        return cls(caps, spec.cooldown_after_rejection_days, spec.suppress_after_acceptance_days,
                   spec.consistency_minutes, spec.same_contact_minutes)

    def lead(self, state: dict[str, Any], now: float) -> str | None:
        """The offer every channel should lead with now, if one was served moments ago.

        >>> Policy().lead({"lead": ["o1", 0.0, "web"]}, now=600.0)
        'o1'
        >>> Policy().lead({"lead": ["o1", 0.0, "web"]}, now=3600.0) is None
        True
        """
        lead = state.get("lead")
        if not lead or now - float(lead[1]) > self.consistency_minutes * 60.0:
            return None
        offer, ts = str(lead[0]), float(lead[1])
        answers = (state.get("rej", {}).get(offer, -1.0), state.get("acc", {}).get(offer, -1.0))
        responded = max(answers)
        return None if responded >= ts else offer  # the customer answered: a material change

    @classmethod
    def load(cls, path: Path) -> Policy:
        if not path.exists():
            return cls()
        try:
            return cls.parse(yaml.safe_load(path.read_text()) or {}, path.name)
        except yaml.YAMLError as exc:
            raise RuleError(f"{path.name}: cannot read: {exc}") from exc

    def blocked(self, state: dict[str, Any], offers: list[tuple[str, str]], channel: str | None,
                now: float) -> dict[str, str]:
        """Offer id -> why the policy holds it back now."""
        out: dict[str, str] = {}
        imps = state.get("imp", [])
        full = {cap.name: (cap, f"contact cap {cap.name}: {n} in {cap.window_days:g} days")
                for cap, n in self.used(imps, now) if n >= cap.max}  # each counted once
        on_show = showing(imps, channel, now, self.same_contact_minutes * 60.0) if full else set()
        for offer_id, kind in offers:
            rej, acc = state.get("rej", {}).get(offer_id), state.get("acc", {}).get(offer_id)
            if acc is not None and now - acc < self.accept_suppress_days * DAY:
                out[offer_id] = "accepted recently"
            elif rej is not None and now - rej < self.reject_cooldown_days * DAY:
                out[offer_id] = "rejected recently"
            elif offer_id in on_show:  # shown again within the same contact: counted once
                continue
            else:
                for cap, why in full.values():
                    if cap.counts(kind, channel):
                        out[offer_id] = why
                        break
        return out

    def used(self, imps: list[list[Any]], now: float) -> list[tuple[Cap, int]]:
        """Each cap with the contacts it counts in its window as of `now`."""
        return [(cap, sum(1 for ts, ch, k, *_ in imps
                          if now - ts < cap.window_days * DAY and cap.counts(k, ch)))
                for cap in self.caps]

    def within_caps(self, state: dict[str, Any], ranked: list[tuple[str, str]],
                    channel: str | None, now: float, again: set[str] | None = None,
                    ) -> dict[str, str]:
        """Offer id -> the cap it would overrun, for the offers of one decision (best first)
        past what the caps leave room for: `blocked` holds back what a full cap allows no
        more of; this, what one decision of many offers would take past it. `again`: the
        offers on show on the channel (`showing`), when the caller has them already.

        >>> p = Policy(caps=[Cap("marketing_per_week", 7, 3, kinds=["offer"])])
        >>> p.within_caps({"imp": [[0.0, "web", "offer", "o1"]]},
        ...               [("o2", "offer"), ("s1", "service"), ("o3", "offer"), ("o4", "offer")],
        ...               "store", 60.0)
        {'o4': 'contact cap marketing_per_week: 3 in 7 days'}
        """
        imps = state.get("imp", [])
        room = {cap.name: cap.max - n for cap, n in self.used(imps, now)}
        if again is None:
            again = showing(imps, channel, now, self.same_contact_minutes * 60.0)
        out: dict[str, str] = {}
        for offer_id, kind in ranked:
            caps = [] if offer_id in again else [c for c in self.caps if c.counts(kind, channel)]
            if full := next((c for c in caps if room[c.name] <= 0), None):
                out[offer_id] = f"contact cap {full.name}: {full.max} in {full.window_days:g} days"
                continue
            for c in caps:
                room[c.name] -= 1
        return out


def showing(imps: list[list[Any]], channel: str | None, now: float, within_s: float) -> set[str]:
    """Offers shown on `channel` less than `within_s` ago: showing one again is the same contact
    (a banner kept from page to page through a visit), not a new one."""
    return {i[3] for i in imps if len(i) > 3 and i[1] == channel and now - i[0] < within_s}


def record(state: dict[str, Any], served: list[tuple[str, str]], channel: str | None,
           now: float, same_contact_s: float = 0.0, again: set[str] | None = None,
           ) -> dict[str, Any]:
    """The state after serving `served` (offer id, kind) on `channel` at `now`: one impression
    `[ts, channel, kind, offer]` per contact; an offer shown on the channel less than
    `same_contact_s` ago is the same contact, its impression moved to `now` (`again`: those
    offers, when the caller has them already).

    >>> s = record({}, [("o1", "offer")], "web", 0.0, 1800.0)
    >>> record(s, [("o1", "offer")], "web", 600.0, 1800.0)["imp"]
    [[600.0, 'web', 'offer', 'o1']]
    """
    if again is None:
        again = showing(state.get("imp", []), channel, now, same_contact_s)
    ids = {offer for offer, _ in served if offer in again}
    imps = [i for i in state.get("imp", []) if now - i[0] < KEEP_DAYS * DAY
            and not (len(i) > 3 and i[3] in ids and i[1] == channel)]
    imps += [[now, channel, kind, offer] for offer, kind in served]
    return {**state, "imp": imps[-KEEP_MAX:]}


def response_field(offer_id: str, outcome: str) -> str | None:
    """The hash field a response is kept in (`rej:<offer>` / `acc:<offer>`), if it matters."""
    key = {"accepted": "acc", "rejected": "rej"}.get(outcome)
    return f"{key}:{offer_id}" if key else None


def merged_hash(visitor: dict[bytes, bytes], customer: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The customer's contact hash with what their anonymous visitor was shown and answered
    (on `identify`): impressions together (latest `KEEP_MAX`), each answer and the lead the
    latest of the two, so the caps, cooldowns and consistency hold across the sign-in.

    >>> merged_hash({b"imp": b"[[1.0,\\"web\\",\\"offer\\",\\"a\\"]]", b"rej:a": b"5"},
    ...             {b"imp": b"[[2.0,\\"app\\",\\"offer\\",\\"b\\"]]", b"rej:a": b"3"})
    {b'imp': b'[[1.0,"web","offer","a"],[2.0,"app","offer","b"]]', b'rej:a': b'5'}
    """
    import orjson

    out = dict(customer)
    for name, value in visitor.items():
        if name == b"imp":
            both = orjson.loads(value) + orjson.loads(customer.get(b"imp", b"[]"))
            out[b"imp"] = orjson.dumps(sorted(both, key=lambda i: i[0])[-KEEP_MAX:])
        elif name == b"lead":
            mine = customer.get(b"lead")
            if mine is None or orjson.loads(value)[1] > orjson.loads(mine)[1]:
                out[b"lead"] = value
        elif name not in customer or float(value) > float(customer[name]):
            out[name] = value  # rej:<offer> / acc:<offer>: when answered
    return out


def from_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """The contact state from its Redis hash."""
    import orjson

    state: dict[str, Any] = {"imp": [], "rej": {}, "acc": {}}
    for k, v in raw.items():
        name = k.decode()
        if name == "imp":
            state["imp"] = orjson.loads(v)
        elif name == "lead":
            state["lead"] = orjson.loads(v)
        elif ":" in name:
            kind, offer = name.split(":", 1)
            if kind in ("rej", "acc"):
                state[kind][offer] = float(v)
    return state
