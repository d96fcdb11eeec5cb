"""Reading a customer's document from Redis and bringing it to the engine's clock."""

from __future__ import annotations

import re
import time
from typing import Any

from engine import consent, store
from engine.aging import age
from engine.decide import Profile
from engine.exported import as_text
from engine.value import at_horizon

_DECIMAL_WHOLE = re.compile(r"\d{1,15}\.0+")


def whole_form(customer_id: str) -> str | None:
    """How ingest reads a whole number written with a decimal point ("17850.0", as pandas
    writes an id column with gaps): "17850"; None for any other id."""
    return as_text(float(customer_id)) if _DECIMAL_WHOLE.fullmatch(customer_id) else None


async def named(st: Any, customer_id: str) -> str:
    """The customer a client names by the value it sent (a path or a filter built from pandas'
    17850.0): the id as written if a customer has it, else the one ingest read that value as."""
    whole = whole_form(customer_id)
    if whole is None:  # any other id: no I/O
        return customer_id
    pipe = st.redis.pipeline(transaction=False)
    pipe.exists(store.customer(customer_id))
    pipe.exists(store.customer(whole))
    as_written, as_read = await st.send(pipe)
    return whole if as_read and not as_written else customer_id


async def resolve(st: Any, customer_id: str | None, anonymous_id: str | None) -> str:
    """The customer id to decide for: a linked anonymous id means its customer."""
    if customer_id:
        return customer_id
    assert anonymous_id is not None
    linked = await st.redis.get(store.anon(anonymous_id))
    return linked.decode() if linked else "anon:" + anonymous_id


async def fetch(st: Any, cid: str, extra: list[str] | None = None,
                hashes: list[str] | None = None) -> tuple[dict[str, Any] | None, float, list[Any]]:
    """The stored document, the engine clock (event time), and extra keys' values (strings,
    then hashes), all in one round trip."""
    pipe = st.redis.pipeline(transaction=False)
    pipe.get(store.customer(cid))
    pipe.get(store.CLOCK)
    pipe.hgetall(store.consent(cid))
    for key in extra or []:
        pipe.get(key)
    for key in hashes or []:
        pipe.hgetall(key)
    raw, clock, consent, *rest = await st.send(pipe)
    clock_ts = float(clock) if clock else 0.0
    return with_consent(store.decode(raw), consent), clock_ts, rest


def with_consent(doc: dict[str, Any] | None, ingested: dict[bytes, bytes]) -> dict[str, Any] | None:
    """Consent ingested after the flow last folded it in wins, by event time
    (`engine.consent.merge`)."""
    if not ingested:
        return doc
    doc = dict(doc) if doc is not None else {"f": {}, "a": {}, "c": {}, "t": 0.0}
    doc["c"], doc["ct"] = consent.merge(doc, ingested)
    return doc


def now_of(clock: float) -> float:
    """Event time for a new record: the engine clock, or wall time before any event."""
    return clock if clock > 0 else time.time()


def aged(features: dict[str, Any], doc_ts: float, clock: float) -> dict[str, Any]:
    """The full features (stored compact), moved on to the engine clock (`engine.aging`)."""
    return age(features, clock - doc_ts)


def to_profile(cid: str, doc: dict[str, Any] | None, clock: float,
               value_params: dict[str, Any] | None = None) -> Profile:
    """The decision's view of the customer; value scores (p_alive, clv, rfm, segment, tier)
    are computed here from the customer's summary and the population parameters."""
    if doc is None:
        return Profile(customer_id=cid, scores=at_horizon({}, 365.0, value_params, clock))
    scores = {**doc.get("s", {}), **at_horizon(doc.get("v") or {}, 365.0, value_params, clock)}
    return Profile(
        customer_id=cid, features=aged(doc.get("f", {}), doc.get("t", clock), clock),
        attributes=doc.get("a", {}), scores=scores, consent=doc.get("c", {}), known=True,
    )
