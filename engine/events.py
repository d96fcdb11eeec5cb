"""The event contract: parse raw input into a validated event, or say exactly why not.

>>> ev = parse(b'{"event_id": "e1", "type": "click", "ts": 1700000000, "anonymous_id": "a1"}')
>>> ev["ts"], ev["action"]
(1700000000.0, 'page_view')
>>> try:
...     parse(b'{"event_id": "e2", "type": "transaction", "ts": 1, "customer_id": "c", "amount": -1}')
... except BadEvent as e:
...     print(e)
amount: Input should be greater than or equal to 0 (a refund or a cancelled order is kind "refund" with a positive amount)
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from engine.exported import HINTS, Currency, as_meant, as_word, whole_floats_as_text
from engine.types import Event

TYPES = ("click", "call", "transaction", "profile", "identify", "consent", "feedback", "outcome")
Scalar = str | int | float | bool | None


def _text(max_length: int) -> Any:
    """A string of 1..max_length characters, or a number taken as its text (in pydantic's core,
    free; `validate` turns whole floats to digits first, as `as_text` does)."""
    return Annotated[str, Field(min_length=1, max_length=max_length, coerce_numbers_to_str=True)]


ShortStr = _text(256)
Name = _text(256)  # a customer or anonymous id: an e-mail address may be 254 characters
TEXT_FIELDS = frozenset({  # every field typed `_text` below, items' included
    "event_id", "customer_id", "anonymous_id", "page", "product_id", "category", "query",
    "session_id", "reason", "agent_id", "order_id", "owner", "decision_id", "offer_id"})
Id = _text(128)
MIN_TS, MAX_TS = 0.0, 4102444800.0  # 1970 .. 2100
MAX_DEPTH = 32  # JSON nesting: events need a few levels; orjson cannot write past 254
MAX_EXTRA = 4096  # bytes of JSON per unknown field kept as context (as `str_max_length`)
_LEAP = re.compile(r"[Tt ]\d\d:\d\d:(60)(?=[.,+-]|$)")  # a leap second's seconds


class BadEvent(ValueError):
    """An event that breaks the contract; the message names the field and the rule."""


def to_ts(value: Any) -> float:
    """RFC 3339 with offset, or Unix seconds, to Unix seconds.

    >>> to_ts("2024-01-01T00:00:00+01:00")
    1704063600.0
    """
    if isinstance(value, bool):
        raise ValueError("ts must be RFC 3339 or Unix seconds, not a boolean")
    if isinstance(value, (int, float)):
        ts = float(value)
    elif isinstance(value, str):
        text, leap = value.replace("Z", "+00:00").replace("z", "+00:00"), 0.0
        if (m := _LEAP.search(text)) and len(value) < 64:  # RFC 3339 allows 23:59:60
            text, leap = text[:m.start(1)] + "59" + text[m.end(1):], 1.0
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            hint = " (Unix seconds go as a JSON number)" if value.strip().replace(".", "", 1).isdigit() else ""
            raise ValueError(f"ts {value[:40]!r} is not RFC 3339{hint}") from exc
        if parsed.tzinfo is None:
            raise ValueError(f"ts {value[:40]!r} has no UTC offset (add Z for UTC, or one "
                             "such as +01:00)")
        ts = parsed.timestamp() + leap
    else:
        raise ValueError(f"ts must be a string or number, got {type(value).__name__}")
    if not MIN_TS <= ts <= MAX_TS or ts != ts:
        hint = next((f" (Unix seconds; this reads as {unit})" for unit, per in
                     (("milliseconds", 1e3), ("microseconds", 1e6)) if MIN_TS < ts / per <= MAX_TS), "")
        raise ValueError(f"ts {value!r} is out of range 1970-2100{hint}")
    return ts


Ts = Annotated[float, BeforeValidator(to_ts)]
MAX_AMOUNT = 1e12  # currency units: past any real payment, short of what breaks the CLV's fit
MAX_QUANTITY = 1e9
MAX_ITEMS = 5000


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic reads true as 1.0
        raise ValueError("must be a number, not a boolean")
    return value


def _number(**bounds: float) -> Any:
    """A finite number within `bounds`: true/false are not numbers here."""
    return Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False, **bounds)]


Money = _number(ge=0, le=MAX_AMOUNT)
# "Web" and "web" are one channel, in events, decisions, the catalog and the policy (in
# pydantic's core: free)
Channel = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1,
                                           max_length=32)]


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow", str_max_length=4096)
    event_id: Id
    ts: Ts
    customer_id: Name | None = None
    anonymous_id: Name | None = None
    channel: Channel | None = None

    @model_validator(mode="after")
    def _needs_customer(self) -> _Base:
        if self.customer_id is None and getattr(self, "type", None) != "click":
            raise ValueError("customer_id is required")
        return self

    @model_validator(mode="after")
    def _bounded_context(self) -> _Base:
        """Unknown fields are kept, within bounds: they land in streams millions of events long."""
        for key, value in (self.model_extra or {}).items():
            if len(key) > 64:
                raise ValueError(f"field name {key[:40]!r}... is longer than 64 characters")
            try:
                size = len(orjson.dumps(value))
            except TypeError as exc:  # an integer past 64 bits, from a caller in Python
                raise ValueError(f"{key}: cannot be kept as JSON ({exc})") from None
            if size > MAX_EXTRA:
                raise ValueError(f"{key}: over {MAX_EXTRA} bytes as JSON")
        return self


class Click(_Base):
    type: Literal["click"]
    action: Literal[
        "page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout",
        "offer_view",
    ] = "page_view"
    page: ShortStr | None = None
    product_id: ShortStr | None = None
    category: ShortStr | None = None
    query: ShortStr | None = None
    session_id: ShortStr | None = None
    price: Money | None = None

    @model_validator(mode="after")
    def _needs_someone(self) -> Click:
        if self.customer_id is None and self.anonymous_id is None:
            raise ValueError("a click needs customer_id or anonymous_id")
        return self


class Call(_Base):
    type: Literal["call"]
    direction: Literal["inbound", "outbound"] = "inbound"
    reason: _text(64) | None = None
    duration_s: _number(ge=0) = 0.0
    sentiment: _number(ge=-1, le=1) | None = None
    outcome: Literal["resolved", "unresolved", "escalated", "callback", "sale"] | None = None
    agent_id: ShortStr | None = None


class Item(BaseModel):
    model_config = ConfigDict(extra="allow")
    product_id: ShortStr | None = None
    category: ShortStr | None = None
    quantity: _number(ge=0, le=MAX_QUANTITY) = 1
    unit_price: Money = 0.0


class Transaction(_Base):
    type: Literal["transaction"]
    kind: Literal["purchase", "refund", "payment"] = "purchase"
    amount: Money
    currency: Currency | None = None
    order_id: ShortStr | None = None
    # an invoice's lines (Online Retail's largest has hundreds); null as tables write "none"
    items: Annotated[list[Item], BeforeValidator(lambda v: [] if v is None else v),
                     Field(max_length=MAX_ITEMS)] = []


class Profile(_Base):
    type: Literal["profile"]
    attributes: Annotated[dict[Annotated[str, Field(max_length=64)], Scalar], Field(max_length=200)] = {}
    owner: ShortStr | None = None


class Identify(_Base):
    type: Literal["identify"]
    anonymous_id: Name
    customer_id: Name


class Consent(_Base):
    type: Literal["consent"]
    purpose: Literal["marketing", "personalization"]
    granted: bool  # as JSON true/false, or the words tables export: "yes", "No", "TRUE", "0", ...


class Feedback(_Base):
    type: Literal["feedback"]
    decision_id: Id
    offer_id: Id
    outcome: Literal["accepted", "rejected", "ignored"]
    value: Money | None = None  # the acceptance's revenue


class Outcome(_Base):
    type: Literal["outcome"]
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    # a label: true/false, a number (any but 0 is true), or a yes/no word as tables export it
    # (Telco's Churn "Yes"/"No", the bank campaign's y "yes"/"no")
    value: bool | Annotated[float, Field(allow_inf_nan=False)]


AnyEvent = Annotated[
    Click | Call | Transaction | Profile | Identify | Consent | Feedback | Outcome,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[Any] = TypeAdapter(AnyEvent)
# What an event that passed `validate` is marked with where it is stored (the partition streams):
# a digest of the schema above and of MAX_DEPTH, so a reader built with the same validation can
# trust the mark and one built with another validates again.
SCHEMA = hashlib.sha1(orjson.dumps([_adapter.json_schema(), MAX_DEPTH],
                                   option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:])  # past the type tag: a field may share
        msg = err["msg"].removeprefix("Value error, ")  # its name ("outcome" of a call)
        msg += HINTS.get((str(err["loc"][-1]) if err["loc"] else "", err["type"]), "")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def depth(obj: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `obj` nests lists and objects, counting up to `limit + 1` at most.

    >>> depth({"a": [1, {"b": []}]}), depth([[[[]]]], limit=2)
    (4, 3)
    """
    deepest, stack = 0, [(obj, 1)]
    while stack and deepest <= limit:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            stack += [(v, level + 1) for v in (value.values() if isinstance(value, dict) else value)]
    return deepest


def validate(obj: Any, latest: float | None = None) -> Event:
    """Validate a decoded JSON object; return it normalised (`ts` in Unix seconds). `latest`:
    the latest event time accepted (the ingest paths pass their clock plus
    `NEXTBEST_MAX_FUTURE_S`): one event from a wrong clock would otherwise carry the engine's
    event-time clock, and with it every customer's recency, years ahead."""
    if not isinstance(obj, dict):
        raise BadEvent(f"an event must be a JSON object, got {type(obj).__name__}")
    if depth(obj) > MAX_DEPTH:
        key = next(k for k, v in obj.items() if depth(v) >= MAX_DEPTH)
        raise BadEvent(f"{str(key)[:40]}: nests lists and objects deeper than {MAX_DEPTH} levels")
    kind = obj.get("type")
    if kind not in TYPES and as_word(kind) in TYPES:  # "Click", as tables write their choices
        kind = as_word(kind)
        obj = {**obj, "type": kind}
    if kind not in TYPES:
        raise BadEvent(f"type: {repr(kind)[:80]} is not one of {', '.join(TYPES)}")
    obj = whole_floats_as_text(obj, TEXT_FIELDS)
    try:
        model = _adapter.validate_python(obj)
    except ValidationError as exc:  # maybe a table's way of writing valid values: tried as meant
        meant = as_meant(obj, exc.errors())
        try:
            model = _adapter.validate_python(meant) if meant else None
        except ValidationError as again:
            raise BadEvent(_reason(again)) from None
        if model is None:
            raise BadEvent(_reason(exc)) from None
    ev = model.model_dump(exclude_none=True)
    if latest is not None and ev["ts"] > latest:
        ahead = (ev["ts"] - latest) / 86400.0
        raise BadEvent(f"ts: {obj['ts']!r} is in the future, {ahead:.2f} days past the latest "
                       "time accepted (NEXTBEST_MAX_FUTURE_S ahead of this machine's clock)")
    return ev


def parse(raw: bytes | str, latest: float | None = None) -> Event:
    """Decode and validate one JSON event."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    return validate(obj, latest)


def routing_key(event: Event) -> str:
    """What the event is partitioned by: the customer, else the anonymous id.

    `identify` routes by its anonymous id, so it stays in order with that id's clicks.
    """
    if event["type"] == "identify" or "customer_id" not in event:
        return "anon:" + event["anonymous_id"]
    return str(event["customer_id"])


def dumps(event: Event) -> bytes:
    return orjson.dumps(event)
