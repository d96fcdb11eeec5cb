"""The Kafka input (`NEXTBEST_SOURCE=kafka`), without a broker: there is none on this machine.

bytewax's `KafkaSource` is built from the settings, and the flow is run with Kafka messages
(bytewax `KafkaSourceMessage`s, as the connector emits them, from a testing source standing in
for the broker) to check that they reach the same customer state as the same events read from
the partition streams. What is not tested here: talking to a broker (list partitions, consume,
resume from snapshotted offsets) - that is bytewax's connector, unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.testing import TestingSource, run_main

from bench.data import write_events
from config import Settings
from engine import store
from engine.events import parse, routing_key
from flows.kafka import kafka_source
from flows.main import build_flow


def _settings(redis_url: str, tmp_path: Path, **kw: Any) -> Settings:
    return Settings(redis_url=redis_url, data_dir=tmp_path, partitions=3, model_publish_every=1,
                    model_secret="k", api_keys={}, flow_recovery=False, **kw)


def test_kafka_source_is_bytewaxs_connector(tmp_path: Path) -> None:
    s = _settings("redis://127.0.0.1:1/0", tmp_path, source="kafka",
                  kafka_brokers="k1:9092, k2:9092", kafka_topic="events")
    src = kafka_source(s)
    assert isinstance(src, KafkaSource)
    assert src._brokers == ["k1:9092", "k2:9092"] and src._topics == ["events"]
    flow = build_flow(s)  # builds without a broker (partitions are listed at run time)
    assert {"nextbest.kafka", "nextbest.events"} <= {sub.step_id for sub in flow.substeps}
    with pytest.raises(ValueError, match="NEXTBEST_KAFKA_BROKERS"):
        kafka_source(_settings("redis://127.0.0.1:1/0", tmp_path, source="kafka"))


def _state(r: redis.Redis) -> dict[str, Any]:
    docs = {k.decode(): {f: v for f, v in store.decode(r.get(k)).items() if f != "s"}
            for k in r.scan_iter(match="nb:c:*", count=1000)}
    metas = {k.decode(): store.decode(v) for k, v in r.hgetall(store.MODELS_META).items()}
    return {"docs": docs, "customers": r.scard(store.CUSTOMERS),
            "models": {n: (m["examples"], m["positives"]) for n, m in metas.items()}}


def test_kafka_messages_reach_the_same_state_as_stream_events(redis_url: str, r: redis.Redis,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_events(path, customers=150, rounds=20, seed=5)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    lines.append(b'{"event_id": "bad", "type": "teleport", "ts": 1}')

    # the stream path: items as the Redis source emits them
    s = _settings(redis_url, tmp_path / "a")
    items = [(0, i + 1, raw, f"{i + 1}-0") for i, raw in enumerate(lines)]
    run_main(build_flow(s, source=TestingSource(items, batch_size=100)))
    streams = _state(r)
    assert int(r.get(store.processed(0)) or 0) == len(lines)
    r.flushall()

    # the Kafka path: messages keyed and partitioned by routing key, as producers must
    s = _settings(redis_url, tmp_path / "b", source="kafka", kafka_brokers="unused:9092")
    offsets = [0, 0, 0]
    msgs = []
    for raw in lines:
        try:
            key = routing_key(parse(raw))
        except Exception:  # noqa: BLE001 - a bad message still has to go somewhere
            key = "bad"
        part = store.partition_of(key, 3)
        msgs.append(KafkaSourceMessage(key=key.encode(), value=raw, topic="events",
                                       partition=part, offset=offsets[part]))
        offsets[part] += 1
    run_main(build_flow(s, source=TestingSource([]), kafka=TestingSource(msgs, batch_size=100)))
    kafka = _state(r)
    assert kafka["customers"] == 150
    assert kafka == streams
    assert not [k for k in r.scan_iter(match="nb:done:*")]  # no stream progress from Kafka
    dead = r.xrange(store.DLQ)
    assert len(dead) == 1 and orjson.loads(dead[0][1][b"raw"])["event_id"] == "bad"
