"""The per-process state of the API: settings, Redis, catalog, models, keys."""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from api.auth import KeyRing
from api.batching import Batcher
from api.errors import ApiError
from api.fallback import Breaker
from api.registry import CatalogHolder, ModelRegistry, RulesFile
from config import Settings, connect
from engine.opportunity import AlertRules
from engine.policy import Policy


class RateLimiter:
    """Token bucket per API key (per process); `rate` 0 disables it."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst or max(1.0, rate * 2)
        self.buckets: dict[str, tuple[float, float]] = {}

    def hit(self, key_id: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self.buckets.get(key_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            raise ApiError(429, "rate_limited", f"more than {self.rate:g} requests/s for this key")
        self.buckets[key_id] = (tokens - 1, now)


@dataclass
class AppState:
    settings: Settings
    redis: aioredis.Redis
    catalog: CatalogHolder
    models: ModelRegistry
    keys: KeyRing
    limiter: RateLimiter
    rng: random.Random = field(default_factory=random.Random)
    breaker: Breaker = field(default_factory=Breaker)
    policy: RulesFile[Policy] | None = None
    alert_rules: RulesFile[AlertRules] | None = None  # the flow's; held for its errors
    batcher: Batcher | None = None  # auto-pipelining; None: each pipeline is its own round trip

    @functools.cached_property
    def cluster(self) -> bool:
        """A Redis Cluster: keys one script touches must share a slot."""
        return connect.is_cluster(str(self.settings.redis_url))

    def knows_offer(self, offer_id: str) -> bool:
        """In the catalog, or served once (a retired offer keeps its model and its figures)."""
        return offer_id in self.catalog.catalog.by_id or "offer:" + offer_id in self.models.meta

    async def send(self, pipe: aioredis.client.Pipeline) -> list[Any]:
        """Run a pipeline's commands: batched with other requests' when batching is on."""
        if self.batcher is not None:
            return await self.batcher.execute(pipe)
        return list(await pipe.execute())
