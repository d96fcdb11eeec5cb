"""The API benchmark's background ingest really loads the flow: each ingest client's events are
new to the engine (the same ids again were dropped as duplicates, so every step after the first
measured decisions beside a flow with nothing new to process)."""

from __future__ import annotations

import random

import orjson
from fastapi.testclient import TestClient

from bench.bench_api import _events, new_events


def _post(api: TestClient, run: int, requests: int) -> tuple[int, int]:
    make, rng = _events(1000, 10, run), random.Random(1)  # the client's seed: same customers
    accepted = duplicates = 0
    for i in range(requests):
        method, path, body = make(i, rng)
        r = api.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        accepted, duplicates = accepted + r.json()["accepted"], duplicates + r.json()["duplicates"]
    return accepted, duplicates


def test_each_ingest_run_posts_events_the_engine_has_not_seen(api: TestClient) -> None:
    assert _post(api, 1, 5) == (50, 0)
    assert _post(api, 2, 5) == (50, 0)  # the same request numbers, new events
    assert _post(api, 1, 5) == (50, 50)  # the same run again: all duplicates, as before the fix


def test_the_ingested_count_leaves_duplicates_out(api: TestClient) -> None:
    before = new_events(api.get("/metrics").text)
    _post(api, 3, 2)
    _post(api, 3, 2)
    assert new_events(api.get("/metrics").text) - before == 20
    body = orjson.loads(_events(10, 1, 4)(0, random.Random(1))[2])
    assert body[0]["event_id"].startswith("bg4-")
