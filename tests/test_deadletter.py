"""The dead-letter stream is bounded, can be inspected, and replayed after a fix."""

from __future__ import annotations

import orjson
import redis
from rich.console import Console

from config import Settings
from engine import store
from nextbest import deadletter
from tests.conftest import ev


def test_dead_letters_are_bounded(api, settings: Settings, r: redis.Redis) -> None:
    settings.deadletter_maxlen = 100
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.conftest import KEY
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as c:
        for b in range(10):
            c.post("/v1/events", json=[{"event_id": f"b{b}-{i}", "type": "nope"} for i in range(100)])
    assert r.xlen(store.DLQ) <= 200  # approximate trimming keeps it near the bound


def test_replay_after_a_fix(api, flow, settings: Settings, r: redis.Redis) -> None:
    # a producer sent amounts as strings with a currency sign: dead-lettered
    bad = [ev(f"t{i}", "transaction", 1_767_225_600.0 + i, "dl1", amount="€5") for i in range(3)]
    res = api.post("/v1/events", json=bad + [ev("ok", "click", 1_767_225_600.0, "dl1")]).json()
    assert res["accepted"] == 1 and len(res["rejected"]) == 3
    rows = deadletter.entries(r, 10)
    assert len(rows) == 3 and all("amount" in row["reason"] for row in rows)
    assert deadletter.replay(settings, None, Console(quiet=True)) == (0, 3)  # nothing fixed yet
    # the fix: correct the raw payloads in place (what an operator's fix script would do)
    for entry_id, f in r.xrange(store.DLQ):
        obj = orjson.loads(f[b"raw"])
        obj["amount"] = float(obj["amount"].strip("€"))
        r.xadd(store.DLQ, {**f, b"raw": orjson.dumps(obj)})
        r.xdel(store.DLQ, entry_id)
    assert deadletter.replay(settings, None, Console(quiet=True)) == (3, 0)
    assert r.xlen(store.DLQ) == 0
    flow.drain()
    profile = api.get("/v1/customers/dl1").json()
    assert profile["features"]["purchases"] == 3 and profile["features"]["total_spend"] == 15.0
    assert deadletter.replay(settings, None, Console(quiet=True)) == (0, 0)


def test_a_body_that_is_not_json_gets_400_and_is_kept(api, r: redis.Redis) -> None:
    before = int(r.hget(store.STATS, "deadlettered") or 0)
    res = api.post("/v1/events", content=b'{"event_id": "x1", "type": "click",',
                   headers={"content-type": "application/json"})
    assert res.status_code == 400 and res.json()["error"]["code"] == "bad_json"
    assert "dead-letter" in res.json()["error"]["message"]
    rows = deadletter.entries(r, 10)
    assert [row["raw"] for row in rows] == ['{"event_id": "x1", "type": "click",']
    assert rows[0]["reason"].startswith("not JSON") and rows[0]["source"] == "api"
    assert int(r.hget(store.STATS, "deadlettered")) == before + 1
    assert "nextbest_deadlettered_total" in api.get("/metrics").text
