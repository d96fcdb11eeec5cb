"""Redis Cluster: the key layout keeps what belongs together in one slot, and the whole loop
(API ingest, the flow, decisions, feedback, learning, alerts, erasure) runs against a real
3-node Redis Cluster that the test session starts itself (`redis+cluster://` URL)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from redis.crc import key_slot

from config import Settings, connect
from engine import store
from nextbest.cluster import LocalCluster
from tests.conftest import ALL, KEY, FlowProcess, ev, get_json, wait_for

T0 = 1_767_225_600.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def rc(cluster: LocalCluster) -> redis.RedisCluster:
    client = connect.client(cluster.url)
    assert isinstance(client, redis.RedisCluster)
    client.flushall()  # every primary
    client.script_flush()
    return client


class ClusterFlow(FlowProcess):
    def pending(self) -> int:
        c = connect.client(str(self.settings.redis_url))
        return sum(int(c.get(store.ingested(p)) or 0) - int(c.get(store.processed(p)) or 0)
                   for p in range(self.settings.partitions))


def test_every_key_of_a_customer_shares_one_slot() -> None:
    per_customer = [f for name, f in vars(store).items() if inspect.isfunction(f)
                    and list(inspect.signature(f).parameters) == ["cid"] and name != "customer_keys"]
    assert {f.__name__ for f in per_customer} >= {"customer", "contact", "consent"}
    for cid in ("c1", "c000042", "anon:xyz", "ü-ñ 7"):
        slots = {key_slot(k.encode()) for k in store.customer_keys(cid)}
        slots |= {key_slot(f(cid).encode()) for f in per_customer}
        assert slots == {key_slot(cid.encode())}, cid
    # the ingest script touches stream + dedup key + counter of one partition: one slot
    for i in range(200):
        e = ev(f"e{i}", "click", T0, f"c{i}") if i % 3 else \
            {"event_id": f"e{i}", "type": "click", "ts": T0, "anonymous_id": f"a{i}"}
        keys, _ = store.ingest_args(e, 16, 60, 1000, cluster=True)
        assert len({key_slot(k.encode()) for k in keys}) == 1
        p = int(keys[0].split("{p")[1].rstrip("}"))
        assert key_slot(store.processed(p).encode()) == key_slot(keys[0].encode())


def test_plain_and_cluster_urls() -> None:
    s = Settings(redis_url="redis://h:7000/0", redis_cluster=True, api_keys={})
    assert s.redis_url == "redis+cluster://h:7000/0"
    assert Settings(redis_url="redis://h:6379/0", api_keys={}).redis_url == "redis://h:6379/0"
    assert isinstance(connect.client("redis://127.0.0.1:1/0"), redis.Redis)


def _consented(cid: str) -> list[dict]:
    return [ev(f"{cid}-consent", "consent", T0, cid, purpose="marketing", granted=True),
            ev(f"{cid}-profile", "profile", T0, cid, owner="rep7", attributes={"plan": "plus"})] + [
        ev(f"{cid}-v{i}", "click", T0 + i, cid, action="product_view", category="electronics")
        for i in range(5)]


def test_the_loop_runs_on_a_redis_cluster(cluster: LocalCluster, rc: redis.RedisCluster,
                                          tmp_path: Path) -> None:
    from api.app import create_app

    s = Settings(redis_url=cluster.url, data_dir=tmp_path / "d", partitions=4,
                 model_publish_every=1, api_keys={KEY: ALL}, flow_recovery=False,
                 model_secret="cluster-secret")
    flow = ClusterFlow(s)
    try:
        with TestClient(create_app(s), headers={"Authorization": f"Bearer {KEY}"}) as api:
            customers = [f"c{i}" for i in range(31)]
            events = [e for cid in customers for e in _consented(cid)]
            events += [{"event_id": "anon-1", "type": "click", "ts": T0 + 9, "anonymous_id": "cookie9",
                        "action": "page_view"},
                       ev("id-1", "identify", T0 + 10, "c3", anonymous_id="cookie9"),
                       {"event_id": "bad-1", "type": "teleport", "ts": T0, "customer_id": "c1"}]
            res = api.post("/v1/events", json=events)
            assert res.status_code == 202, res.text
            assert res.json()["accepted"] == len(events) - 1
            assert api.post("/v1/events", json=events[:5]).json()["duplicates"] == 5
            flow.drain()
            assert get_json(api, "/v1/status")["customers"] == 31
            assert get_json(api, "/v1/customers/c3")["features"]["click_count_90d"] >= 5

            body = {"channel": "web", "offers": ["headphones_promo"]}
            before = api.post("/v1/decisions", json={**body, "customer_id": "c30"}).json()
            p0 = before["offers"][0]["propensity"]
            accepted = 0
            for cid in customers[:30]:
                d = api.post("/v1/decisions", json={**body, "customer_id": cid}).json()
                if d["offers"]:
                    fb = api.post(f"/v1/decisions/{d['decision_id']}/feedback",
                                  json={"offer_id": "headphones_promo", "outcome": "accepted"})
                    assert fb.status_code == 202, fb.text
                    accepted += 1
            assert accepted >= 20
            flow.drain()

            def moved() -> float | None:
                d = api.post("/v1/decisions", json={**body, "customer_id": "c30",
                                                    "channel": "call_center"}).json()
                p = d["offers"][0]["propensity"] if d["offers"] else None
                return p if p is not None and p > p0 + 0.05 else None

            assert wait_for(moved, timeout=20)  # new model versions reached the API (pub/sub)
            models = {m["name"]: m for m in get_json(api, "/v1/models")["models"]}
            assert models["offer:headphones_promo"]["examples"] == accepted
            assert get_json(api, "/v1/status")["deadlettered"] == 1
            assert api.get("/v1/alerts").status_code == 200
            nba = get_json(api, "/v1/customers/c30/next-best-action", params={"channel": "web"})
            assert nba["actions"] is not None

            erased = api.delete("/v1/customers/c3")  # per-key deletes, stream purge, erase record
            assert erased.status_code == 200, erased.text
            flow.drain()
            assert rc.get(store.customer("c3")) is None and rc.get(store.anon("cookie9")) is None
            assert not rc.sismember(store.CUSTOMERS, "c3")
    finally:
        flow.stop()
    # the data really is spread over the three nodes
    sizes = [redis.Redis(port=p).dbsize() for p in cluster.ports]
    assert all(n > 0 for n in sizes), sizes
