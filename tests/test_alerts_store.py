"""Alert listing through the real API over alerts written by the flow's real sink: newest first
in event time whatever order they were raised in, filters served from the indexes, ack by id,
erasure and trimming keep the indexes consistent."""

from __future__ import annotations

import random
from typing import Any

from engine import store
from flows.sink import _Writer

T0 = 1_700_000_000.0


def alert(i: int, ts: float, cid: str | None = "c1", owner: str = "rep1",
          type: str = "opportunity") -> dict[str, Any]:
    return {"alert_id": f"al-{i}", "type": type, "severity": "medium", "customer_id": cid,
            "owner": owner, "title": f"alert {i}", "reasons": ["r"], "score": 0.5, "ts": ts,
            "status": "open"}


def write(url: str, alerts: list[dict[str, Any]], maxlen: int = 100_000) -> _Writer:
    w = _Writer(url, 1000, maxlen, (4, 3600, 10_000))
    w.write_batch([("alert", a) for a in alerts])
    return w


def listed(api: Any, **params: Any) -> list[dict[str, Any]]:
    res = api.get("/v1/alerts", params=params)
    assert res.status_code == 200, res.text
    return res.json()["alerts"]


def test_newest_first_in_event_time_whatever_the_order_raised(api, redis_url):
    rng = random.Random(4)
    alerts = [alert(i, T0 + 3600 * i, cid=f"c{i % 7}", owner=f"rep{i % 3}") for i in range(60)]
    rng.shuffle(alerts)  # a replay raises them in the order customers were processed
    write(redis_url, alerts)
    ts = [a["ts"] for a in listed(api, limit=1000)]
    assert ts == sorted(ts, reverse=True) and len(ts) == 60
    mine = listed(api, owner="rep1", limit=5)
    assert [a["ts"] for a in mine] == sorted((a["ts"] for a in alerts if a["owner"] == "rep1"),
                                             reverse=True)[:5]
    since = listed(api, since=str(T0 + 3600 * 50), limit=1000)
    assert {a["alert_id"] for a in since} == {f"al-{i}" for i in range(50, 60)}
    c3 = listed(api, customer_id="c3", limit=1000)
    assert {a["alert_id"] for a in c3} == {a["alert_id"] for a in alerts if a["customer_id"] == "c3"}
    profile = api.get("/v1/customers/c3")  # no profile document: 404, alerts do not make one
    assert profile.status_code == 404


def test_ack_by_id_and_status_filter(api, redis_url):
    write(redis_url, [alert(1, T0), alert(2, T0 + 1), alert(3, T0 + 2, cid=None, type="model_drift")])
    assert api.post("/v1/alerts/nope/ack").status_code == 404
    res = api.post("/v1/alerts/al-2/ack")
    assert res.status_code == 200 and res.json()["status"] == "acked"
    assert [a["alert_id"] for a in listed(api, status="open")] == ["al-3", "al-1"]
    assert [a["alert_id"] for a in listed(api, status="acked")] == ["al-2"]
    assert [a["alert_id"] for a in listed(api, type="model_drift")] == ["al-3"]
    assert [a["alert_id"] for a in listed(api, status="acknowledged")] == ["al-2"]  # an alias
    assert [a["alert_id"] for a in listed(api, status="all")] == ["al-3", "al-2", "al-1"]
    assert [a["alert_id"] for a in listed(api, since="2023-11-14")] == ["al-3", "al-2", "al-1"]  # a date
    assert listed(api, since="2023-11-15", status="all") == []  # T0 is 2023-11-14T22:13:20Z
    for bad in ({"status": "closed"}, {"severity": "urgent"}, {"type": "churn"}):  # a 422, not []
        res = api.get("/v1/alerts", params=bad)
        assert res.status_code == 422 and "is not one of" in res.json()["error"]["message"]
        assert api.get("/v1/alerts/stream", params=bad).status_code == 422


def test_a_batch_written_twice_lists_each_alert_once(api, redis_url):
    alerts = [alert(i, T0 + i) for i in range(5)]
    write(redis_url, alerts)
    write(redis_url, alerts)  # the flow re-writes a batch after a crash
    assert [a["alert_id"] for a in listed(api)] == [f"al-{i}" for i in range(4, -1, -1)]


def test_erasure_removes_the_customers_alerts_from_every_index(api, redis_url, r):
    write(redis_url, [alert(1, T0, cid="gone"), alert(2, T0 + 1, cid="stays")])
    assert api.delete("/v1/customers/gone").status_code in (200, 202)
    assert [a["alert_id"] for a in listed(api)] == ["al-2"]
    assert r.hget(store.ALERT_DOCS, "al-1") is None and r.zscore(store.ALERT_INDEX, "al-1") is None
    assert not r.exists(store.customer_alerts("gone"))


def test_trim_keeps_the_newest_alerts_in_event_time(api, redis_url, r):
    w = write(redis_url, [alert(i, T0 + i) for i in range(30)], maxlen=10)
    w.trim_alerts()
    assert r.zcard(store.ALERT_INDEX) == 10 and r.hlen(store.ALERT_DOCS) == 10
    assert [a["alert_id"] for a in listed(api, limit=100)] == [f"al-{i}" for i in range(29, 19, -1)]


def test_open_alerts_follow_the_account_to_its_new_owner(api, flow) -> None:
    """rep1 hands the account to rep2: the open alert is listed under rep2 (it stayed rep1's,
    so rep2 never saw it); the one rep1 acknowledged stays theirs; new alerts go to rep2."""
    from tests.conftest import ev, get_json

    t = 1_767_225_600.0
    api.post("/v1/events", json=[
        ev("h-p", "profile", t, "acct", attributes={"owner": "rep1"}),
        ev("h-t", "transaction", t + 1, "acct", amount=1500.0),                # big spender
        ev("h-c", "call", t + 2, "acct", reason="cancel_request")])             # asked to cancel
    flow.drain()
    raised = {a["data"]["rule"]: a for a in listed(api, owner="rep1")}
    assert set(raised) == {"big_spender_no_card", "asked_to_cancel"}
    api.post(f"/v1/alerts/{raised['asked_to_cancel']['alert_id']}/ack")
    api.post("/v1/events", json=[ev("h-p2", "profile", t + 3, "acct", owner="rep2")])
    flow.drain()
    assert [a["data"]["rule"] for a in listed(api, owner="rep2")] == ["big_spender_no_card"]
    assert [a["data"]["rule"] for a in listed(api, owner="rep1")] == ["asked_to_cancel"]
    profile = get_json(api, "/v1/customers/acct")
    assert profile["owner"] == "rep2" and [a["owner"] for a in profile["alerts"]] == ["rep2"]
    api.post("/v1/events", json=[ev("h-c2", "call", t + 40 * 86400, "acct", reason="cancel_request")])
    flow.drain()
    assert [a["data"]["rule"] for a in listed(api, owner="rep2")][0] == "asked_to_cancel"


def test_a_territory_moved_in_one_batch_hands_every_open_alert_over(api, redis_url, r) -> None:
    """A batch of hand-overs (a territory realigned at once) shares its round trips: each
    customer's open alerts go to their new owner, an account passed on twice in the batch ends
    with the last owner, and an acknowledged alert stays with whoever handled it."""
    w = write(redis_url, [alert(1, T0, cid="a", owner="rep1"), alert(2, T0 + 1, cid="b", owner="rep1"),
                          alert(3, T0 + 2, cid="b", owner="rep1"), alert(4, T0 + 3, cid="c", owner="rep9")])
    assert api.post("/v1/alerts/al-3/ack").status_code == 200
    w.write_batch([("owner", "a", "rep1", "rep2"), ("owner", "b", "rep1", "rep2"),
                   ("owner", "b", "rep2", "rep3"), ("owner", "c", "rep1", "rep2")])
    assert [a["alert_id"] for a in listed(api, owner="rep2")] == ["al-1"]
    assert [a["alert_id"] for a in listed(api, owner="rep3")] == ["al-2"]
    assert [a["alert_id"] for a in listed(api, owner="rep1")] == ["al-3"]  # acknowledged
    assert [a["alert_id"] for a in listed(api, owner="rep9")] == ["al-4"]  # not rep1's to give


def test_the_live_stream_catches_up_from_since_then_goes_live(redis_url, tmp_path):
    """`since` on the stream sent nothing from before the connection, and a bad `limit` was
    ignored where the list refuses it: the same filters now, the matching alerts since then
    first (oldest first, the newest `limit`), then live ones."""
    import threading

    import httpx
    import orjson

    from config import Settings
    from nextbest.engine import Engine
    from nextbest.redis_server import free_port
    from tests.conftest import ALL, KEY

    write(redis_url, [alert(1, T0 - 86400), alert(2, T0), alert(3, T0 + 1, owner="rep2"),
                      alert(4, T0 + 2)])
    s = Settings(redis_url=redis_url, data_dir=tmp_path / "d", api_port=free_port(),
                 api_keys={KEY: ALL}, model_secret="x")
    with Engine(s, flow=False) as engine:
        url, auth = engine.api_url + "/v1/alerts/stream", {"Authorization": f"Bearer {KEY}"}
        with httpx.stream("GET", url, params={"limit": "abc"}, headers=auth, timeout=10) as res:
            assert res.status_code == 422
        got: list[str] = []
        with httpx.stream("GET", url, params={"owner": "rep1", "since": str(T0), "limit": 5},
                          headers=auth, timeout=10) as res:
            assert res.status_code == 200
            threading.Timer(1.0, write, (redis_url, [alert(2, T0), alert(5, T0 + 3)])).start()
            for line in res.iter_lines():
                if line.startswith("data: "):
                    got.append(orjson.loads(line[6:])["alert_id"])
                if len(got) == 3:
                    break
        assert got == ["al-2", "al-4", "al-5"]  # al-2 written again: not sent twice
