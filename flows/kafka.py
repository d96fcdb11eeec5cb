"""Kafka input (`NEXTBEST_SOURCE=kafka`): a topic's partitions through bytewax's own Kafka
connector, read beside the Redis partition streams.

Producers key each message by the event's routing key (`engine.events.routing_key`: the
customer id, or `anon:<anonymous id>`), so Kafka's partitioner keeps every customer's events
in one partition, read by one worker, in order; the flow then keys by customer as for the
streams. The Redis streams stay: the API's ingest, decision records, feedback, ticks and
erasure records still arrive there, so the two inputs are merged.

Offsets live in bytewax's recovery snapshots (the connector's resume state), so a restarted
flow with recovery resumes each Kafka partition where its state was. What differs from the
streams: the API's ingest deduplicates by `event_id` before an event enters a stream, while a
message read from Kafka is deduplicated only by the customer's state in the flow (it remembers
the customer's recent event ids), so use an idempotent producer; and `GET /v1/status`
`pending` counts only the streams (Kafka lag is the connector's `bytewax_kafka_consumer_lag`
metric, on the dashboard).
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from config import Settings
from flows.source import Item


def kafka_source(settings: Settings) -> Source[Any]:
    """bytewax's `KafkaSource` over `NEXTBEST_KAFKA_TOPIC` on `NEXTBEST_KAFKA_BROKERS`."""
    from bytewax.connectors.kafka import KafkaSource  # needs confluent-kafka (extra `kafka`)

    brokers = [b.strip() for b in settings.kafka_brokers.split(",") if b.strip()]
    if not brokers:
        raise ValueError("NEXTBEST_SOURCE=kafka needs NEXTBEST_KAFKA_BROKERS (host:port,...)")
    return KafkaSource(brokers, [settings.kafka_topic], tail=True, batch_size=settings.flow_batch)


def to_item(msg: Any) -> Item:
    """A Kafka message as the flow's input item. Its partition number is negative (-1 - the
    Kafka partition): the sink keeps progress counters only for the Redis streams. Nothing on
    Kafka has been validated by nextbest: the flow validates every message.

    >>> from types import SimpleNamespace as M
    >>> to_item(M(partition=2, offset=41, value=b'{"type": "click"}'))
    (-3, 42, b'{"type": "click"}', '', False)
    """
    return (-1 - int(msg.partition), int(msg.offset) + 1, msg.value or b"", "", False)


def kafka_input(flow: Dataflow, settings: Settings, source: Source[Any] | None = None,
                ) -> Stream[Item]:
    return op.map("kafka_items", op.input("kafka", flow, source or kafka_source(settings)),
                  to_item)
