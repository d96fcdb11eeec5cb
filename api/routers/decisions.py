"""POST /v1/decisions and its feedback."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections import Counter
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter
from fastapi import Request as HttpRequest
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from api import ingest, metrics, profiles
from api.deps import Decide, State
from api.errors import ApiError, invalid
from api.responses import ORJSON
from config import connect
from engine import consent, policy, store
from engine.decide import Decision, Profile, Request, decide
from engine.events import BadEvent, Channel, Money, validate
from engine.exported import as_text, as_word
from engine.vector import vectorize

router = APIRouter(tags=["decisions"])
Id = Annotated[str, BeforeValidator(as_text), Field(min_length=1, max_length=128)]  # as events'
Name = Annotated[str, BeforeValidator(as_text), Field(min_length=1, max_length=256)]


class DecisionIn(BaseModel):
    customer_id: Name | None = None
    anonymous_id: Name | None = None
    channel: Channel | None = None
    context: dict[str, Any] = Field(default_factory=dict, max_length=50)
    limit: Annotated[int, Field(ge=1, le=50)] = 1
    offers: Annotated[list[Id], Field(max_length=500)] | None = None

    @field_validator("context")
    @classmethod
    def _encodable(cls, context: dict[str, Any]) -> dict[str, Any]:
        """The context is vectorised and logged as JSON: lone surrogates or nesting orjson cannot
        write would fail there, as a 500."""
        try:
            orjson.dumps(context)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"not writable as JSON: {exc}") from None
        if bad := _not_finite(context):  # NaN, Infinity or 1e400: JSON has no such number
            raise ValueError(f"{bad}: not a finite number")
        return context

    @model_validator(mode="after")
    def _someone(self) -> DecisionIn:
        if not self.customer_id and not self.anonymous_id:
            raise ValueError("customer_id or anonymous_id is required")
        return self


def _not_finite(value: Any, at: str = "") -> str | None:
    """Where `value` holds a float that is not finite, if anywhere."""
    if isinstance(value, float):
        return None if math.isfinite(value) else at or "value"
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    return next((bad for k, v in items if (bad := _not_finite(v, f"{at}.{k}" if at else str(k)))), None)


class FeedbackIn(BaseModel):
    offer_id: Id
    outcome: Annotated[Literal["accepted", "rejected", "ignored"], BeforeValidator(as_word)]  # "Accepted"
    value: Money | None = None  # the acceptance's revenue, as a feedback event's


def _offers(d: Decision) -> list[dict[str, Any]]:
    return [{"offer_id": s.offer.id, "kind": s.offer.kind, "title": s.offer.title, "rank": i + 1,
             "score": round(s.score, 6), "propensity": round(s.propensity, 6),
             "value": s.offer.value, "reasons": s.reasons}
            for i, s in enumerate(d.ranked)]


async def run_decision(st: Any, body: DecisionIn, cid: str, contacts: int | None = None,
                       ) -> tuple[dict[str, Any], Decision]:
    """`contacts`: how many of the ranked offers reach the customer (the caps hold them and
    count them); None, all. An agent's screen lists several actions and presents one."""
    doc, clock, (contact,) = await profiles.fetch(st, cid, hashes=[store.contact(cid)])
    profile = profiles.to_profile(cid, doc, clock, st.models.value_params)
    personal = consent.for_decision(profile.consent, "personalization", body.channel, body.context) is not False
    if not personal:  # answered as for a visitor the engine does not know (engine/consent.py)
        profile = Profile(cid, consent=profile.consent, known=profile.known)
    req = Request(body.channel, body.context, body.limit, body.offers)
    x = vectorize(profile.features, profile.attributes, {**body.context, "channel": body.channel})
    now = profiles.now_of(clock)
    contact_state = policy.from_hash(contact)
    catalog = st.catalog.catalog
    blocked = st.policy.value.blocked(contact_state, [(o.id, o.kind) for o in catalog.offers],
                                       body.channel, now)
    lead = st.policy.value.lead(contact_state, now)  # consistency across channels
    d = decide(catalog, st.models.offers, profile, req, x, now, st.rng, st.settings.epsilon,
               st.settings.control_share, blocked=blocked, exploration=st.settings.exploration,
               lead=lead, scorer=st.models.offer_scorer)
    same_contact_s = st.policy.value.same_contact_minutes * 60.0  # offers on show: one contact
    again = policy.showing(contact_state.get("imp", []), body.channel, now, same_contact_s)
    if over := st.policy.value.within_caps(contact_state, [(s.offer.id, s.offer.kind)
                                                          for s in d.ranked[:contacts]],
                                           body.channel, now, again):
        d.ranked = [s for s in d.ranked if s.offer.id not in over]  # never the first: it fit
        d.rejected.update(over)
    if not personal:
        for s in d.ranked:
            s.notes.append("not personalised: the customer withdrew personalization consent")
    did = secrets.token_urlsafe(12)
    record = {
        "type": "decision", "_internal": True, "event_id": "d:" + did, "decision_id": did,
        "customer_id": cid, "ts": profiles.now_of(clock), "channel": body.channel,
        "offers": [s.offer.id for s in d.ranked], "held_out": d.held_out,
        "propensities": {s.offer.id: round(s.propensity, 6) for s in d.ranked},
        "probability": d.probability, "explored": d.explored, "x": x,
        "candidates": {c.offer.id: [round(c.propensity, 5), round((c.offer.value or 1.0) * c.offer.lever, 4)]
                       for c in d.candidates},
    }
    if repeat := [s.offer.id for s in d.ranked if s.offer.id in again]:
        record["repeat"] = repeat  # the same contact: one impression (engine/responses.py)
    pipe = st.redis.pipeline(transaction=False)
    connect.evalsha(pipe, store.RECORD_SHA, *store.record_args(record, st.settings.partitions,
                                                               st.settings.stream_maxlen))
    ttl = st.settings.dedup_ttl_s
    pipe.set(store.decision(did), cid, ex=ttl)
    args: list[Any] = [did, time.time(), ttl]  # the index erasure reads
    path = "empty"
    if d.ranked:
        served = policy.record(contact_state, [(s.offer.id, s.offer.kind) for s in d.ranked[:contacts]],
                               body.channel, now, same_contact_s, again)
        # a lead kept for consistency keeps its first time: the window does not slide
        kept = lead is not None and d.ranked[0].offer.id == lead
        lead_entry = contact_state["lead"] if kept else [d.ranked[0].offer.id, now, body.channel]
        path = "consistency" if kept else "ranked"
        args += [store.encode(served["imp"]), store.encode(lead_entry),
                 int(policy.KEEP_DAYS * 86400)]
    connect.evalsha(pipe, store.DECIDED_SHA, [store.customer_decisions(cid), store.contact(cid)],
                    args)
    await ingest.execute(st, pipe)
    metrics.DECISIONS.labels(body.channel or "none", str(d.explored).lower()).inc()
    metrics.DECISION_PATHS.labels(path).inc()
    out = {"decision_id": did, "customer_id": cid, "offers": _offers(d), "explored": d.explored,
           "probability": round(d.probability, 6), "held_out": d.held_out, "personalized": personal,
           "excluded": dict(Counter(d.rejected.values()))}  # why the other offers were not candidates
    return out, d


async def decision_for(st: Any, body: DecisionIn) -> dict[str, Any]:
    cid = await profiles.resolve(st, body.customer_id, body.anonymous_id)
    return (await run_decision(st, body, cid))[0]


@router.post("/v1/decisions", summary="Next best offers for a customer, now")
async def post_decision(body: DecisionIn, st: State, _: Decide) -> ORJSON:
    return ORJSON(await decision_for(st, body))


async def serve(st: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
    """`post_decision` from the raw body, for the lean path (api/lean.py)."""
    try:
        body = DecisionIn.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(_errors(exc, raw), prefix=("body",)) from None
    return 200, await decision_for(st, body)


def _errors(exc: ValidationError, raw: bytes) -> list[Any]:
    """What FastAPI would report: JSON that pydantic's strict parser refuses but the standard
    library reads (a lone surrogate) is validated as a value, so the message names the field."""
    if not any(e["type"] == "json_invalid" for e in exc.errors()):
        return exc.errors(include_url=False)
    try:
        DecisionIn.model_validate(json.loads(raw))
    except ValidationError as again:
        return again.errors(include_url=False)
    except (ValueError, RecursionError):  # not JSON to the standard library either
        pass
    return exc.errors(include_url=False)


@router.post("/v1/decisions/{decision_id}/feedback", status_code=202,
             summary="Record a customer's response to a decision",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": FeedbackIn.model_json_schema()}}}})
async def post_feedback(decision_id: str, request: HttpRequest, st: State, _: Decide) -> ORJSON:
    # read as JSON whatever the Content-Type says, as decisions and events are (`curl -d`
    # sends a form's type: FastAPI would answer "a valid dictionary" without naming a field)
    try:
        body = FeedbackIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise invalid(exc.errors(include_url=False), prefix=("body",)) from None
    raw = await st.redis.get(store.decision(decision_id))
    if raw is None:
        raise ApiError(404, "not_found", f"decision {decision_id!r} is unknown or expired")
    if not st.knows_offer(body.offer_id):  # a typo would count as an answer to no one's offer
        raise ApiError(422, "invalid_request", f"offer_id: {body.offer_id!r} is not in the catalog "
                       "and was never served")
    cid = raw.decode()
    if cid.startswith("anon:"):  # a visitor since signed in: their customer holds the decision
        cid = await profiles.resolve(st, None, cid.removeprefix("anon:"))
    _, clock, _ = await profiles.fetch(st, cid)
    event = {"event_id": f"fb:{decision_id}:{body.offer_id}", "type": "feedback",
             "ts": profiles.now_of(clock), "customer_id": cid,
             "decision_id": decision_id, "offer_id": body.offer_id, "outcome": body.outcome}
    if body.value is not None:
        event["value"] = body.value
    try:
        ev = validate(event)
    except BadEvent as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    added = await ingest.append(st, [ev], consent=True)
    metrics.FEEDBACK.labels(body.outcome).inc()
    return ORJSON({"accepted": 1, "duplicate": added == [0]}, status_code=202)
