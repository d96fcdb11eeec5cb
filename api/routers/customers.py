"""The customer: profile with features and scores, next best action for agents, erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api import alerts_store, erasure, profiles
from api.deps import Admin, Agent, State
from api.errors import ApiError
from api.responses import ORJSON
from api.routers.decisions import DecisionIn, run_decision
from engine.events import Channel
from engine.value import at_horizon
from engine.vector import vectorize

router = APIRouter(tags=["customers"])
Horizon = Annotated[float, Query(gt=0, le=3650)]
CANCEL_DAYS = 30  # a customer who asked to cancel this recently is at risk: retention leads


def live_scores(st: Any, doc: dict[str, Any], features: dict[str, Any],
                horizon_days: float, clock: float) -> dict[str, Any]:
    """Stored scores, with model scores recomputed from the API's current models."""
    x = vectorize(features, doc.get("a", {}))
    scores = dict(doc.get("s", {}))
    predicted = st.models.offer_scorer.predict(x)
    scores["offers"] = {oid: round(predicted[oid], 4) for oid, m in st.models.offers.items()
                        if m.examples and oid in predicted}
    scores["outcomes"] = {n: round(m.predict_one(x), 4) for n, m in st.models.outcomes.items()
                          if m.examples}
    scores["churn_risk"] = scores["outcomes"].get("churned", scores.get("churn_risk"))
    scores.update(at_horizon(doc.get("v") or {}, horizon_days, st.models.value_params, clock))
    return scores


async def fetch_named(st: Any, customer_id: str) -> tuple[str, dict[str, Any] | None, float]:
    """The customer the path names (`profiles.named`: "17850.0" finds "17850"): the id found
    under, the document (None: unknown) and the clock."""
    customer_id = await profiles.named(st, customer_id)
    doc, clock, _ = await profiles.fetch(st, customer_id)
    return customer_id, doc, clock


async def load(st: Any, customer_id: str) -> tuple[str, dict[str, Any], float]:
    customer_id, doc, clock = await fetch_named(st, customer_id)
    if doc is None:
        raise ApiError(404, "not_found", f"customer {customer_id!r} is unknown")
    return customer_id, doc, clock


# `:path`: a customer id may hold a slash (`ACME/42`, sent as `ACME%2F42`); the agent's route
# is declared before the profile's, which would otherwise take `ACME/42/next-best-action` (so an
# id that itself ends in `/next-best-action` reads as the agent's route)
@router.get("/v1/customers/{customer_id:path}/next-best-action",
            summary="Actions for an agent talking to the customer now")
async def next_best_action(customer_id: str, st: State, _: Agent,
                           channel: Annotated[Channel, Query()] = "call_center",
                           limit: Annotated[int, Query(ge=1, le=20)] = 3) -> ORJSON:
    customer_id, doc, clock = await load(st, customer_id)
    features = profiles.aged(doc.get("f", {}), doc.get("t", clock), clock)
    scores = live_scores(st, doc, features, 365.0, clock)
    body = DecisionIn(customer_id=customer_id, channel=channel, limit=limit)
    out, decision = await run_decision(st, body, customer_id, contacts=1)  # the one presented
    churn = scores.get("churn_risk") or 0.0
    cancel = features.get("days_since_cancel_request", -1.0)
    at_risk = churn >= st.settings.churn_threshold or 0 <= cancel <= CANCEL_DAYS
    actions = out["offers"]
    if at_risk:  # retention first when the customer may leave
        actions.sort(key=lambda a: (a["kind"] != "retention", a["rank"]))
    for rank, a in enumerate(actions, 1):
        a["rank"] = rank
        a["script"] = st.catalog.catalog.by_id[a["offer_id"]].script or a["title"]
    alerts = await alerts_store.query(st.redis, customer_id=customer_id, status="open", limit=5)
    summary = {
        "tier": scores.get("tier"), "segment": scores.get("segment"), "clv": scores.get("clv"),
        "churn_risk": scores.get("churn_risk"), "p_alive": scores.get("p_alive"),
        "consent": doc.get("c", {}), "owner": doc.get("o"),
        "last_interactions": list(reversed(doc.get("r", [])))[:5],
        "total_spend": features.get("total_spend"), "open_alerts": alerts, "at_risk": at_risk,
    }
    return ORJSON({"decision_id": out["decision_id"], "customer_id": customer_id,
                   "actions": actions, "summary": summary, "explored": out["explored"],
                   **{k: out[k] for k in ("personalized", "held_out", "excluded") if k in out}})


@router.get("/v1/customers/{customer_id:path}", summary="A customer's profile, features and scores")
async def get_customer(customer_id: str, st: State, _: Agent,
                       horizon_days: Horizon = 365.0) -> ORJSON:
    customer_id, doc, clock = await load(st, customer_id)
    features = profiles.aged(doc.get("f", {}), doc.get("t", clock), clock)
    alerts = await alerts_store.query(st.redis, customer_id=customer_id, status="open", limit=20)
    return ORJSON({
        "customer_id": customer_id, "attributes": doc.get("a", {}), "owner": doc.get("o"),
        "features": features, "scores": live_scores(st, doc, features, horizon_days, clock),
        "consent": doc.get("c", {}), "alerts": alerts, "anonymous_ids": doc.get("ids", []),
        "recent": list(reversed(doc.get("r", []))), "updated_at": doc.get("t"), "clock": clock,
    })


@router.delete("/v1/customers/{customer_id:path}", summary="Erase everything held about a customer")
async def erase(customer_id: str, st: State, _: Admin) -> ORJSON:
    customer_id, doc, clock = await fetch_named(st, customer_id)
    if doc is None and not customer_id.startswith("anon:"):  # a visitor named by their cookie
        visitor, doc, clock = await fetch_named(st, "anon:" + customer_id)
        customer_id = visitor if doc is not None else customer_id
    return ORJSON(await erasure.erase(st, customer_id, doc, profiles.now_of(clock)))
