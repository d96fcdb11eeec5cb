"""The API's model watcher (api/registry.py) against a real Redis: a notice reloads at once, a
burst of notices makes a bounded number of reloads, and the last notice of a burst is never
left unapplied."""

from __future__ import annotations

import asyncio
import contextlib
import time

from api.registry import CatalogHolder, ModelRegistry, watch
from config import Settings, connect
from engine import store


class Counting(ModelRegistry):
    def __init__(self) -> None:
        super().__init__(b"x")
        self.at: list[float] = []

    async def refresh(self, r: object) -> None:
        self.at.append(time.monotonic())


def test_a_burst_of_notices_makes_few_reloads_and_the_last_is_applied(
        redis_url: str, settings: Settings) -> None:
    async def main() -> tuple[list[float], float, float]:
        sub, pub = connect.async_client(redis_url), connect.async_client(redis_url)
        registry, stop = Counting(), asyncio.Event()
        catalog = CatalogHolder(settings.rules_dir / "offers.yaml")
        task = asyncio.create_task(watch(sub, registry, catalog, poll_s=60.0, stop=stop, gap_s=1.0))
        try:
            while not registry.at:  # subscribed and loaded once
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.1)  # quiet for longer than the gap
            start = time.monotonic()
            await pub.publish(store.MODELS_CHANNEL, b"1")
            while len(registry.at) < 2:
                await asyncio.sleep(0.005)
            first = registry.at[-1] - start
            for _ in range(100):  # 2 s of notices, 50 a second
                await pub.publish(store.MODELS_CHANNEL, b"1")
                await asyncio.sleep(0.02)
            last_notice = time.monotonic()
            await asyncio.sleep(1.5)
            return registry.at[2:], first, last_notice
        finally:
            stop.set()
            task.cancel()  # as the app's shutdown does
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sub.aclose()
            await pub.aclose()

    reloads, first, last_notice = asyncio.run(main())
    assert first < 0.5  # a lone notice after a quiet second is applied at once, not a gap later
    assert 2 <= len(reloads) <= 4, len(reloads)  # 100 notices in ~2 s: one reload a second
    assert max(reloads) >= last_notice - 0.05  # the burst's end was reloaded


def test_an_offer_answered_rarely_reaches_the_api_at_once_with_the_default_cadence(
        settings: Settings) -> None:
    """The flow published an offer model's weights every 50 changes (impressions, answers): one
    answer to a rarely shown offer waited for 49 more before the API learned from it."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import KEY, FlowProcess, ev, get_json, serve, wait_for

    settings.model_publish_every = 50  # the default; the test settings publish every change
    settings.control_share = 0.0
    flow = FlowProcess(settings)
    try:
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as api:
            t = 1_767_225_600.0
            api.post("/v1/events", json=[ev("r-c", "consent", t, "rare", purpose="marketing",
                                            granted=True)])
            flow.drain()
            d = serve(api, flow, {"customer_id": "rare"}, "garden_sale")
            # the impression taken in: the model's first version, published at once

            def learned() -> int:
                models = get_json(api, "/v1/models")["models"]
                return next((m["examples"] for m in models if m["name"] == "offer:garden_sale"), -1)

            assert wait_for(lambda: learned() == 0, timeout=10)
            api.post(f"/v1/decisions/{d['decision_id']}/feedback",
                     json={"offer_id": "garden_sale", "outcome": "accepted"})
            flow.drain()
            assert wait_for(lambda: learned() == 1, timeout=10)
    finally:
        flow.stop()
