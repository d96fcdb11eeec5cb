"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from api import console, errors, ingest, metrics
from api.auth import KeyRing
from api.batching import Batcher
from api.context import AppState, RateLimiter
from api.fallback import Fallback
from api.lean import App, Route
from api.registry import CatalogHolder, ModelRegistry, RulesFile, watch
from api.responses import ORJSON
from api.routers import admin, alerts, customers, decisions, events, health
from config import Settings, connect, get_settings
from engine.opportunity import AlertRules
from engine.policy import Policy


class Timing:
    """Pure ASGI middleware: request latency by route template and status."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path_format", "unmatched")  # without converters (`:path`)
            metrics.REQUESTS.labels(path, str(status[0])).observe(time.perf_counter() - start)


class BodyLimit:
    """Pure ASGI middleware: a body over `limit` bytes gets 413 in the error format on every
    route: before it is read when its length is declared, as soon as it passes the limit when it
    is chunked (Starlette's own limiter answers in plain text, and the decision fallback reads
    bodies outside FastAPI's error handlers)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ORJSON(errors.body("too_large", f"request body over {self.limit} bytes"),
                           status_code=413)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        seen, started = 0, False

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return msg

        async def watched(msg: Any) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, limited, watched)
        except HTTPException as exc:  # raised where FastAPI's handlers do not reach
            if started or exc.status_code != 413:
                raise
            await too_large(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set (nextbest up starts an embedded Redis and sets it)")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a small pool that waits for a free connection: big pools showed 40-80 ms tails here
        r = connect.async_client(str(settings.redis_url), max_connections=12,
                                 timeout=settings.redis_timeout_s)
        sub = connect.async_client(str(settings.redis_url))  # pub/sub and model reloads
        st = AppState(settings, r, CatalogHolder(settings.rules_dir / "offers.yaml"),
                      ModelRegistry(settings.secret()), KeyRing(settings.api_keys),
                      RateLimiter(settings.rate_limit_per_s))
        with contextlib.suppress(Exception):  # else loaded on first use (api/ingest.py)
            await ingest.load_scripts(r)
        st.policy = RulesFile(settings.rules_dir / "policy.yaml", Policy.load, Policy())
        st.alert_rules = RulesFile(settings.rules_dir / "alerts.yaml", AlertRules.load,
                                   AlertRules())
        st.batcher = Batcher(r, timeout=settings.redis_timeout_s) if settings.redis_batching else None
        app.state.nb = st
        # What exists once started (routes, catalog, models, the app's own objects) is left out
        # of garbage collections: a full collection walked all of it and set the p99 of
        # decisions (500-750/s: p99 100-285 ms with this against 165-2,093 ms without, two runs
        # each of `./nb bench api --rates 500,750`)
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        task = asyncio.create_task(watch(sub, st.models, st.catalog, poll_s=settings.models_poll_s,
                                         stop=stop, files=(st.policy, st.alert_rules)))
        try:
            yield
        finally:
            # redis-py can swallow a cancellation inside a read: ask the loop to stop as well
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, 3.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r.aclose(), 2.0)
                await asyncio.wait_for(sub.aclose(), 2.0)

    app = App(title="nextbest", version="1", default_response_class=ORJSON, lifespan=lifespan,
              description="Real-time next-best-action, customer profiles and alerts.")
    app.lean = {"/v1/decisions": Route("decide", decisions.serve, fallback=True),
                "/v1/events": Route("ingest", events.serve)}
    errors.install(app)
    for module in (events, decisions, customers, alerts, admin, health):
        app.include_router(module.router)
    app.include_router(console.router)  # the web console, matched after every API route
    app.add_middleware(Fallback, owner=app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Timing)
    return app


def app_from_env() -> FastAPI:
    """Entry for `uvicorn --factory api.app:app_from_env`."""
    return create_app(get_settings())
