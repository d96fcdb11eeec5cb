"""What API processes hold in memory: the catalog and the published models.

Both reload in the background (catalog on file change, models on a pub/sub notice with a slow
poll as a safety net), never on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from engine import store
from engine.catalog import Catalog
from engine.learning import ModelState
from engine.models import OnlineModel, UntrustedModel, load
from engine.rules import RuleError
from engine.scoring import LinearScorer

log = logging.getLogger("nextbest.api")
T = TypeVar("T")


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


class RulesFile(Generic[T]):
    """A rules file other than the catalog (rules/policy.yaml, rules/alerts.yaml), reloaded on
    change by `watch`; a broken edit keeps the last good value and `error` says why (shown by
    `GET /v1/status`). No file: `default`. alerts.yaml is the flow's: the API holds it only to
    report its errors."""

    def __init__(self, path: Path, load: Callable[[Path], T], default: T) -> None:
        self.path, self.load, self.default = path, load, default
        self.value: T = default
        self.mtime: float | None = None
        self.error: str | None = None
        self.refresh()

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime == self.mtime:
            return
        self.mtime = mtime
        try:
            self.value = self.load(self.path) if mtime is not None else self.default
            self.error = None
        except RuleError as exc:
            self.error = str(exc)
            log.error("%s reload failed, keeping the previous one: %s", self.path.name, exc)


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
                files: Sequence[RulesFile[Any]] = (), gap_s: float = 0.25) -> None:
    """Reload models on pub/sub notices (at most one reload per `gap_s`: notices in between
    make one reload when it ends) and every `poll_s` regardless; the catalog and the other
    rules `files` on change."""
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
            for f in files:
                f.refresh()
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
