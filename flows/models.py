"""The flow's read-only view of the published models (for scoring churn inside the flow)."""

from __future__ import annotations

import time
from typing import Any

import redis

from config import connect
from engine import store
from engine.models import OnlineModel, UntrustedModel, load


class ModelCache:
    """Published models and the population's value fit, refreshed from Redis at most every
    `every` seconds (not per event)."""

    def __init__(self, url: str | None, secret: bytes, every: float = 2.0) -> None:
        self.client = connect.client(url) if url else None
        self.secret, self.every = secret, every
        self.models: dict[str, OnlineModel] = {}
        self.versions: dict[str, int] = {}
        self.params: dict[str, Any] | None = None
        self._next = 0.0

    def get(self) -> dict[str, OnlineModel]:
        now = time.monotonic()
        if self.client is not None and now >= self._next:
            self._next = now + self.every
            try:
                self.refresh()
            except redis.RedisError:
                pass  # keep scoring with what we have
        return self.models

    def value_params(self) -> dict[str, Any] | None:
        self.get()
        return self.params

    def refresh(self) -> None:
        assert self.client is not None
        self.params = store.decode(self.client.get(store.VALUE_PARAMS)) or self.params
        metas = self.client.hgetall(store.MODELS_META)
        changed = [n.decode() for n, m in metas.items()
                   if store.decode(m)["version"] != self.versions.get(n.decode())]
        if not changed:
            return
        blobs = self.client.hmget(store.MODELS, changed)
        for name, blob in zip(changed, blobs):
            if blob is None:
                continue
            try:
                state = load(blob, self.secret)
            except UntrustedModel:
                continue
            self.models[name] = state.model
            self.versions[name] = state.model.version
