"""The floor of this stack: a bare FastAPI endpoint that reads one Redis hash and returns it.

`uvicorn --factory bench.floor:app` with REDIS_URL set. Same server, loop, JSON library and
Redis client settings as the engine's API, so the difference is the engine's own work.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI

from api.responses import ORJSON


def app() -> FastAPI:
    state: dict[str, Any] = {}
    application = FastAPI(default_response_class=ORJSON)

    @application.on_event("startup")
    async def _start() -> None:
        pool = aioredis.BlockingConnectionPool.from_url(os.environ["REDIS_URL"], max_connections=6)
        state["r"] = aioredis.Redis(connection_pool=pool)

    @application.get("/floor/{cid}")
    async def floor(cid: str) -> ORJSON:
        raw = await state["r"].hgetall(f"floor:{{{cid}}}")
        return ORJSON({k.decode(): v.decode() for k, v in raw.items()})

    return application
