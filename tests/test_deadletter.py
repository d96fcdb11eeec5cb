"""The dead-letter stream is bounded, can be inspected, and replayed after a fix."""

from __future__ import annotations

import time

import orjson
import redis
from rich.console import Console

from config import Settings
from engine import store
from flows.main import parse_batch
from nextbest import deadletter, replay
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


def test_an_event_from_a_clock_far_ahead_is_dead_lettered_not_moving_the_engine_clock(
        api, flow, settings: Settings, r: redis.Redis, tmp_path) -> None:
    """One device with a wrong clock must not carry the engine's event-time clock (and every
    customer's recency, and the silence sweep) years ahead: beyond `NEXTBEST_MAX_FUTURE_S`
    ahead of the ingesting machine's clock, an event is dead-lettered with its reason, through
    the API, `nextbest replay`, and the flow's own check of entries no ingest path marked."""
    now = time.time()
    res = api.post("/v1/events", json=[ev("soon", "click", now + 3600, "fut1"),
                                       ev("y2099", "click", 4_070_908_800.0, "fut1")]).json()
    assert res["accepted"] == 1 and len(res["rejected"]) == 1
    assert res["rejected"][0]["index"] == 1 and "in the future" in res["rejected"][0]["error"]
    (row,) = deadletter.entries(r, 10)
    assert "y2099" in str(row["raw"]) and "in the future" in row["reason"]
    flow.drain()
    assert float(r.get(store.CLOCK)) < now + 2 * 3600  # the accepted event's time, not 2099
    # replay: the same check
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(ev("r2099", "call", 4_070_908_800.0, "fut2")) + b"\n"
                     + orjson.dumps(ev("r-ok", "call", now, "fut2")) + b"\n")
    assert replay.feed(settings, path, Console(quiet=True))[2] == 1
    # the flow's check (entries from Kafka, or appended without the ingest path's mark)
    late = parse_batch([(0, 1, orjson.dumps(ev("k2099", "click", 4_070_908_800.0, "fut3")))],
                       settings.latest_ts())
    assert late[0][0] == "bad" and "in the future" in late[0][2]
    assert parse_batch([(0, 1, orjson.dumps(ev("k2099", "click", 4_070_908_800.0, "fut3")))])[0][0] == "fut3"
    settings.max_future_s = 0  # no limit: a simulation far ahead of today is allowed
    assert settings.latest_ts() is None


def test_replay_takes_tables_exported_as_json_arrays_and_stops_at_a_csv(
        settings: Settings, r: redis.Redis, tmp_path) -> None:
    """pandas' `to_json(orient="records")` writes one JSON array on one line, with `indent` over
    many: each event is taken (a bad one dead-lettered alone, with its item number; the whole
    line was one dead letter, cut at 64 KiB). A CSV given by mistake stops at its header, with
    nothing taken, instead of a dead letter per row."""
    t = time.time()
    one_line = tmp_path / "records.json"
    one_line.write_bytes(orjson.dumps([ev("a1", "click", t, "arr"), {"event_id": "a2", "type": "nope"},
                                       ev("a3", "click", t, "arr")]) + b"\n")
    assert replay.feed(settings, one_line, Console(quiet=True)) == (2, 0, 1)
    (row,) = deadletter.entries(r, 10)
    assert row["reason"].startswith("line 1, item 1: type:") and b'"a2"' in row["raw"].encode()
    indented = tmp_path / "indented.json"
    indented.write_bytes(orjson.dumps([ev(f"i{k}", "click", t, "arr") for k in range(700)],
                                      option=orjson.OPT_INDENT_2))
    assert replay.feed(settings, indented, Console(quiet=True)) == (700, 0, 0)  # past one batch
    csv = tmp_path / "online_retail.csv"
    csv.write_text("InvoiceNo,StockCode,Quantity\n536365,85123A,6\n")
    before = sum(int(r.get(store.ingested(p)) or 0) for p in range(settings.partitions))
    out = Console(record=True, width=200)
    assert replay.replay(settings, str(csv), wait=False, console=out) == 2
    assert "one JSON object per line is needed" in out.export_text()
    assert sum(int(r.get(store.ingested(p)) or 0) for p in range(settings.partitions)) == before
    assert r.xlen(store.DLQ) == 1  # only the array's bad item
