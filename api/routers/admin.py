"""Catalog, offer performance, models, engine status."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from fastapi import APIRouter

from api.deps import Admin, Agent, State
from api.errors import ApiError
from api.responses import ORJSON
from engine import store
from engine.uplift import uplift

router = APIRouter(tags=["catalog and models"])


@router.get("/v1/offers", summary="The catalog")
async def offers(st: State, _: Agent) -> ORJSON:
    return ORJSON({"offers": [o.model_dump(exclude_none=True)
                                      for o in st.catalog.catalog.offers],
                           "error": st.catalog.error})


def performance(st: Any, offer_id: str) -> dict[str, Any]:
    meta = st.models.meta.get("offer:" + offer_id, {})
    perf = dict(meta.get("performance") or {})
    for k in ("impressions", "control_impressions", "accepted", "rejected", "ignored", "revenue"):
        perf.setdefault(k, 0)
    perf.setdefault("acceptance_rate", None)
    perf["accepts"] = perf["accepted"]  # the contract's word for them
    conv = perf.pop("conversion", None) or uplift(0, 0, 0, 0)
    perf["uplift"] = conv["uplift"]
    perf["uplift_ci95"] = conv["ci95"]
    perf["conversion"] = conv
    category = getattr(st.catalog.catalog.by_id.get(offer_id), "category", None)
    perf["uplift_definition"] = (f"conversion = a purchase {'in ' + repr(category) if category else 'of anything'}"
                                 " within the offer's reward window, of customers served it (treated) or "
                                 "held out where it would have been served (control); uplift = treated "
                                 "rate - control rate")
    return {"offer_id": offer_id, **perf}


@router.get("/v1/offers/{offer_id}/performance", summary="Impressions, accepts, uplift")
async def offer_performance(offer_id: str, st: State, _: Agent) -> ORJSON:
    if not st.knows_offer(offer_id):
        raise ApiError(404, "not_found", f"offer {offer_id!r} is not in the catalog")
    await st.models.refresh(st.redis)
    return ORJSON(performance(st, offer_id))


@router.get("/v1/models", summary="Every model: version, examples, online quality, drift")
async def models(st: State, _: Admin) -> ORJSON:
    """Quality drift (ADWIN on errors) under `drift`, input drift per feature under
    `input_drift`, and per-source dead-letter and lateness spikes under `sources`."""
    await st.models.refresh(st.redis)
    out = []
    for name, meta in sorted(st.models.meta.items()):
        kind, _, target = name.partition(":")
        inputs = meta.get("input_drift") or {}
        out.append({**{k: v for k, v in meta.items() if k != "performance"},
                    "kind": kind, "target": target,
                    "drift": {"detected": meta.get("drifts", 0) > 0,
                              "count": meta.get("drifts", 0),
                              "last_at_example": meta.get("last_drift_at"),
                              "inputs": inputs.get("state", "warming")}})
    sources = store.decode(await st.redis.get(store.SOURCES)) or {}
    return ORJSON({"models": out, "sources": sources})


async def pending(st: Any) -> int:
    n = st.settings.partitions
    pipe = st.redis.pipeline(transaction=False)
    for p in range(n):
        pipe.get(store.ingested(p))
        pipe.get(store.processed(p))
    vals = [int(v or 0) for v in await pipe.execute()]
    return sum(max(0, vals[2 * i] - vals[2 * i + 1]) for i in range(n))


@router.get("/v1/status", summary="Pending events, event-time clock, counts")
async def status(st: State, _: Admin) -> ORJSON:
    pipe = st.redis.pipeline(transaction=False)
    pipe.get(store.CLOCK)
    pipe.scard(store.CUSTOMERS)
    pipe.hlen(store.MODELS)
    pipe.hgetall(store.STATS)
    pipe.exists(store.HEARTBEAT)
    clock, customers, nmodels, stats, alive = await pipe.execute()
    return ORJSON({
        "pending": await pending(st), "clock": float(clock) if clock else None,
        "clock_iso": _iso(float(clock)) if clock else None,
        "customers": customers, "models": nmodels, "deadlettered": int(stats.get(b"deadlettered", 0)),
        "currency": st.settings.currency, "unconverted_currencies": store.unconverted(stats),
        "flow_alive": bool(alive), "catalog_error": st.catalog.error,
        "policy_error": st.policy.error if st.policy else None,
        "alert_rules_error": st.alert_rules.error if st.alert_rules else None,
    })


def _iso(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()
