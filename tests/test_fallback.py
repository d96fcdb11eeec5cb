"""Redis unavailable: decisions keep answering from the catalog, writes get a clear 503, and the
API recovers by itself when Redis returns."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from config import Settings
from nextbest.redis_server import RedisServer
from tests.conftest import ALL, KEY, ev

BODY = {"customer_id": "c1", "channel": "call_center", "limit": 2}


def timed(api: TestClient, body: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    res = api.post("/v1/decisions", json=body)
    assert res.status_code == 200, res.text
    return res.json(), time.perf_counter() - t


@pytest.mark.parametrize("lean", [True, False], ids=["lean path", "FastAPI routes"])
def test_decisions_fall_back_and_recover(tmp_path: Path, lean: bool) -> None:
    server = RedisServer(tmp_path / "r").start()
    s = Settings(redis_url=server.url, data_dir=tmp_path / "d", api_keys={KEY: ALL}, model_secret="x",
                 lean_routes=lean)
    try:
        with TestClient(create_app(s), headers={"Authorization": f"Bearer {KEY}"}) as api:
            normal, _ = timed(api, BODY)
            assert "fallback" not in normal
            server.kill()
            first, _ = timed(api, BODY)
            assert first["fallback"] is True and first["offers"] and first["personalized"] is False
            assert all(o["kind"] != "offer" for o in first["offers"])  # no consent known: no marketing
            assert "unavailable" in first["offers"][0]["reasons"][0]
            times = [timed(api, BODY)[1] for _ in range(50)]
            assert sorted(times)[int(0.99 * len(times))] < 0.05  # within the latency budget
            write = api.post("/v1/events", json=[ev("e1", "click", 1.0, "c1")])
            assert write.status_code == 503 and write.json()["error"]["code"] == "unavailable"
            assert api.post("/v1/decisions", json=BODY, headers={"Authorization": "Bearer nope-nope"}).status_code == 401
            bad = api.post("/v1/decisions", json={"channel": "web", "limit": 0})  # breaker open
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
            server.start()
            deadline = time.monotonic() + 10
            while timed(api, BODY)[0].get("fallback") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "fallback" not in timed(api, BODY)[0]
            assert api.post("/v1/events", json=[ev("e2", "click", 1.0, "c1")]).status_code == 202
    finally:
        server.stop()


def test_a_hung_redis_costs_one_bounded_wait_then_fast_fallbacks(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    s = Settings(redis_url=server.url, data_dir=tmp_path / "d", api_keys={KEY: ALL}, model_secret="x")
    try:
        with TestClient(create_app(s), headers={"Authorization": f"Bearer {KEY}"}) as api:
            timed(api, BODY)
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                first, took = timed(api, BODY)
                assert first["fallback"] is True and took < 1.0
                later = [timed(api, BODY)[1] for _ in range(20)]
                assert max(later) < 0.3 and sorted(later)[10] < 0.05
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
    finally:
        server.stop()
