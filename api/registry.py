"""What API processes hold in memory: the catalog and the published models.

Both reload in the background (catalog on file change, models on a pub/sub notice with a slow
poll as a safety net), never on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from engine import store
from engine.catalog import Catalog
from engine.learning import ModelState
from engine.models import OnlineModel, UntrustedModel, load
from engine.policy import Policy
from engine.rules import RuleError
from engine.scoring import LinearScorer

log = logging.getLogger("nextbest.api")


class CatalogHolder:
    """The current catalog; a broken edit keeps the last good one and reports the error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.catalog = Catalog.load(path)
        self.mtime = path.stat().st_mtime
        self.error: str | None = None

    def refresh(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            self.error = f"{self.path.name}: {exc}"
            return False
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            self.catalog = Catalog.load(self.path)
            self.error = None
            return True
        except RuleError as exc:
            self.error = str(exc)
            log.error("catalog reload failed, keeping the previous one: %s", exc)
            return False


class PolicyHolder:
    """The contact policy (rules/policy.yaml), reloaded on change; a broken edit keeps the last."""

    def __init__(self, path: Path) -> None:
        self.path, self.mtime, self.error = path, None, None
        self.policy = Policy()
        self.refresh()

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime if self.path.exists() else None
            if mtime != self.mtime:
                self.mtime = mtime
                self.policy = Policy.load(self.path)
                self.error = None
        except RuleError as exc:
            self.error = str(exc)
            log.error("policy reload failed, keeping the previous one: %s", exc)


class RulesCheck:
    """A rules file only the flow reads (rules/alerts.yaml), parsed again when it changes so
    `GET /v1/status` can say why the flow is keeping its last good version. No file: no error."""

    def __init__(self, path: Path, load: Any) -> None:
        self.path, self.load = path, load
        self.mtime: float | None = None
        self._error: str | None = None

    def error(self) -> str | None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            self.mtime, self._error = None, None
            return None
        if mtime != self.mtime:
            self.mtime = mtime
            try:
                self.load(self.path)
                self._error = None
            except RuleError as exc:
                self._error = str(exc)
        return self._error


class ModelRegistry:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.states: dict[str, ModelState] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.offers: dict[str, OnlineModel] = {}
        self.outcomes: dict[str, OnlineModel] = {}
        self.loaded = False
        self.value_params: dict[str, Any] | None = None
        self.offer_scorer = LinearScorer({})

    async def refresh(self, r: aioredis.Redis) -> None:
        self.value_params = store.decode(await r.get(store.VALUE_PARAMS)) or self.value_params
        metas = {k.decode(): store.decode(v) for k, v in (await r.hgetall(store.MODELS_META)).items()}
        changed = [n for n, m in metas.items()
                   if n not in self.meta or m.get("version") != self.meta[n].get("version")
                   or m != self.meta[n]]
        stale = [n for n, m in metas.items() if n not in self.states
                 or self.states[n].model.version != m.get("version")]
        if stale:
            blobs = await r.hmget(store.MODELS, stale)
            for name, blob in zip(stale, blobs):
                if blob is None:
                    continue
                try:
                    self.states[name] = load(blob, self.secret)
                except UntrustedModel:
                    log.error("model %s has a bad signature; not loaded", name)
        for name in changed:
            self.meta[name] = metas[name]
        offers = {n.removeprefix("offer:"): s.model for n, s in self.states.items()
                  if n.startswith("offer:")}
        if stale or not self.loaded:
            self.offer_scorer = LinearScorer(offers)  # before the swap: both change together
        self.offers = offers
        self.outcomes = {n.removeprefix("outcome:"): s.model for n, s in self.states.items()
                         if n.startswith("outcome:")}
        self.loaded = True


async def watch(r: aioredis.Redis, registry: ModelRegistry, catalog: CatalogHolder,
                poll_s: float = 5.0, stop: asyncio.Event | None = None,
                policy: PolicyHolder | None = None, gap_s: float = 0.25) -> None:
    """Reload models on pub/sub notices (at most one reload per `gap_s`: notices in between
    make one reload when it ends) and every `poll_s` regardless; the catalog on change."""
    pubsub = None
    stop = stop or asyncio.Event()
    due, last = False, 0.0
    while not stop.is_set():
        try:
            if pubsub is None:
                await r.initialize()  # a cluster client learns its slots before pub/sub
                pubsub = r.pubsub()
                await pubsub.subscribe(store.MODELS_CHANNEL)
                await registry.refresh(r)
                last = time.monotonic()
            wait = max(0.01, last + gap_s - time.monotonic()) if due else poll_s / 5
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            while msg is not None:  # a burst of notices makes one reload
                due = True
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
            if (due and time.monotonic() - last >= gap_s) or _tick(poll_s):
                due = False
                await registry.refresh(r)
                last = time.monotonic()
            catalog.refresh()
            if policy is not None:
                policy.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis away: retry later, keep serving
            log.warning("model watch: %s", exc)
            pubsub = None
            await asyncio.sleep(1.0)


_last = [0.0]


def _tick(every: float) -> bool:
    now = time.monotonic()
    if now - _last[0] >= every:
        _last[0] = now
        return True
    return False
