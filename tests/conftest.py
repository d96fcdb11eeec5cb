"""Test fixtures: a real Redis server started by the test session, the real flow and API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from config import Settings
from engine import store
from nextbest.redis_server import RedisServer

KEY = "test-admin-key-0001"
ROLE_KEYS = {f"role-{r}-key-0001": [r] for r in ("ingest", "decide", "agent", "sales", "admin")}
ALL = ["admin", "ingest", "decide", "agent", "sales"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.script_flush()
    return redis_server.url


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, data_dir=tmp_path / "data", model_publish_every=1,
                    api_keys={KEY: ALL, **ROLE_KEYS}, flow_recovery=False, partitions=2,
                    model_secret="test-secret")


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    from api.app import create_app

    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client


class FlowProcess:
    """The real flow, as `nextbest up` runs it, in a child process."""

    def __init__(self, settings: Settings, extra: list[str] | None = None) -> None:
        env = {**os.environ, **settings.env()}
        self.log = settings.data_dir / "flow.log"
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nextbest.flowrun", "--no-recovery", *(extra or [])],
            env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self.settings = settings

    def pending(self) -> int:
        c = redis.Redis.from_url(str(self.settings.redis_url))
        return sum(int(c.get(store.ingested(p)) or 0) - int(c.get(store.processed(p)) or 0)
                   for p in range(self.settings.partitions))

    def drain(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            if self.pending() == 0:
                return
            time.sleep(0.05)
        raise TimeoutError(f"flow still has {self.pending()} pending:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def flow(settings: Settings) -> Iterator[FlowProcess]:
    proc = FlowProcess(settings)
    yield proc
    proc.stop()


def wait_for(check: Any, timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise TimeoutError(f"condition not met in {timeout}s; last value {last!r}")


def ev(event_id: str, type: str, ts: float, customer_id: str | None = "c1", **fields: Any) -> dict[str, Any]:
    out = {"event_id": event_id, "type": type, "ts": ts, **fields}
    if customer_id is not None:
        out["customer_id"] = customer_id
    return out


def serve(api: TestClient, flow: FlowProcess, who: dict[str, Any], offer: str,
          context: dict[str, Any] | None = None) -> dict[str, Any]:
    """A web decision restricted to `offer` for `who` (`{"customer_id": ...}` or
    `{"anonymous_id": ...}`), asserted to serve it, its record then taken in by the flow."""
    body = {**who, "channel": "web", "offers": [offer], "context": context or {}}
    d = api.post("/v1/decisions", json=body).json()
    assert [o["offer_id"] for o in d["offers"]] == [offer], d
    flow.drain()
    return d


def get_json(client: httpx.Client | TestClient, path: str, **kw: Any) -> Any:
    res = client.get(path, **kw)
    assert res.status_code == 200, res.text
    return res.json()
