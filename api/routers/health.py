"""Liveness, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from api import metrics
from api.deps import State
from api.responses import ORJSON
from api.routers.admin import pending
from engine import store

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> ORJSON:
    return ORJSON({"status": "ok"})


@router.get("/readyz")
async def readyz(st: State) -> ORJSON:
    try:
        await st.redis.ping()
        redis_ok = True
    except Exception:  # noqa: BLE001
        redis_ok = False
    ready = redis_ok and st.models.loaded
    return ORJSON({"ready": ready, "redis": redis_ok, "models_loaded": st.models.loaded,
                           "models": len(st.models.states), "catalog_error": st.catalog.error},
                          status_code=200 if ready else 503)


@router.get("/metrics")
async def prometheus(st: State) -> Response:
    try:
        metrics.PENDING.set(await pending(st))
        stats = await st.redis.hgetall(store.STATS)
        metrics.DEADLETTERED.set(int(stats.get(b"deadlettered", 0)))
        for code, n in store.unconverted(stats).items():
            metrics.UNCONVERTED.labels(code).set(n)
        webhooks = await st.redis.hgetall(store.WEBHOOK_STATS)
        for result in ("delivered", "retried", "failed"):
            metrics.WEBHOOKS.labels(result).set(int(webhooks.get(result.encode(), 0)))
    except Exception:  # noqa: BLE001 - metrics must answer even when Redis does not
        pass
    for name, meta in st.models.meta.items():
        metrics.MODELS.labels(name).set(meta.get("examples") or 0)
        metrics.MODEL_DRIFTS.labels(name).set(meta.get("drifts") or 0)
        if meta.get("auc") is not None:
            metrics.MODEL_AUC.labels(name).set(meta["auc"])
        rate = (meta.get("performance") or {}).get("acceptance_rate")
        if name.startswith("offer:") and rate is not None:
            metrics.ACCEPTANCE.labels(name.removeprefix("offer:")).set(rate)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
