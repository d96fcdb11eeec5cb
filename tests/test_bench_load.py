"""The API benchmark's background ingest really loads the flow: each ingest client's events are
new to the engine (the same ids again were dropped as duplicates, so every step after the first
measured decisions beside a flow with nothing new to process); each step draws its own customers;
the machine yardstick the benchmarks print times the same work every time."""

from __future__ import annotations

import random

import orjson
from fastapi.testclient import TestClient

from bench import machine
from bench.bench_api import _events
from bench.metrics import new_events


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


def test_each_decision_step_draws_its_own_customers() -> None:
    """With one seed for all steps, every step decided for the previous steps' customers again:
    by then they had a lead kept for consistency or had hit their daily cap, so later steps
    measured ever cheaper decisions. Two steps through the real load client, against a server
    that records whom each request was for."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench.bench_api import _decision, measure

    seen: list[str] = []

    class Record(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the load client expects

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - the handler's API
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["customer_id"])
            self._reply(b"{}")

        def do_GET(self) -> None:  # noqa: N802 - /metrics: no counters
            self._reply(b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Record)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        steps = []
        for _ in range(2):
            measure(server.server_address[1], _decision(100_000), 100, 0.5)
            steps.append(set(seen))
            seen.clear()
    finally:
        server.shutdown()
    assert len(steps[0]) > 100 and len(steps[1]) > 100
    assert len(steps[0] & steps[1]) < 10  # random overlap of ~150 of 100,000 customers each


def test_the_machine_yardstick_times_the_same_full_work_every_time() -> None:
    """Runs are compared by their yardsticks, so each must time the same work: the same
    customer (with clicks, purchases and calls) and the same documents, whatever ran before."""
    first, second = machine.yardstick(rounds=2, clicks=30), machine.yardstick(rounds=3, clicks=30)
    assert first["digest"] == second["digest"]
    assert 0 < first["spread"][0] <= first["us_per_batch"] <= first["spread"][1]
    assert first["us_per_loopback_trip"] > 0
    features = machine._customer()[0].state.features()
    assert features["purchases"] > 0 and features["calls_reason_billing"] > 0
    assert features["click_count_90d"] > 100
    assert "yardstick" in machine.describe(first)
    # the benchmarks' way, in a fresh process: the same work as in this one
    assert machine.measure()["digest"] == machine.yardstick(rounds=1)["digest"]
