"""Through the real API and the real flow (real Redis): the same events give the same stored
profiles whether they arrive live-paced in event-time order or all at once, shuffled within the
lateness bound."""

from __future__ import annotations

import random
from typing import Any

import redis

from engine import store
from tests.conftest import FlowProcess, get_json
from tests.test_features import rich_events, within_lateness

CUSTOMERS = 30


def population(rng: random.Random) -> list[dict[str, Any]]:
    # two days of activity: at most three purchase days each, so no silence watch (ticks) is
    # scheduled and nothing but the events decides the profiles
    events: list[dict[str, Any]] = []
    for i in range(CUSTOMERS):
        events += rich_events(rng, cid=f"f{i}", n=rng.randint(5, 30), span_days=2.0)
    return events


def profiles(r: redis.Redis) -> dict[str, dict[str, Any]]:
    out = {}
    for i in range(CUSTOMERS):
        doc = store.decode(r.get(store.customer(f"f{i}")))
        out[f"f{i}"] = {k: v for k, v in doc.items() if k != "s"}  # "s": model scores, by wall time
    return out


def post(api: Any, events: list[dict[str, Any]]) -> None:
    res = api.post("/v1/events", json=events)
    assert res.status_code == 202 and res.json()["accepted"] == len(events), res.text


def test_live_paced_and_all_at_once_shuffled_give_identical_profiles(api, flow, settings, r):
    rng = random.Random(21)
    events = population(rng)
    in_order = sorted(events, key=lambda e: e["ts"])
    for i in range(0, len(in_order), 25):  # live: small batches, each processed before the next
        post(api, in_order[i:i + 25])
        flow.drain()
    live = profiles(r)
    live_api = get_json(api, "/v1/customers/f3")

    flow.stop()
    r.flushall()
    again = FlowProcess(settings)
    try:
        shuffled = within_lateness(events, rng, settings.lateness_s)
        for i in range(0, len(shuffled), 1000):
            post(api, shuffled[i:i + 1000])
        again.drain()
        assert profiles(r) == live
        at_once_api = get_json(api, "/v1/customers/f3")
    finally:
        again.stop()
    for key in ("features", "attributes", "consent", "owner", "recent", "clock"):
        assert at_once_api[key] == live_api[key], key
    f = live_api["features"]
    assert f["sessions_30d"] > 0 and f["click_count_90d"] > 0 and f["days_since_event"] >= 0
