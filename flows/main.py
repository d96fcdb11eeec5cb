"""The engine's dataflow, built by `build_flow(settings)`.

    stream partitions -> parse (bad -> dead letter) -> identity (anonymous ids)
      -> customer state, features, feedback joins, scores, alerts (keyed by customer)
      -> models and offer statistics (keyed by model name) -> Redis

Run it with `python -m bytewax.run flows.main:flow` (settings from the environment), or through
`nextbest up`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import zstandard
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from config import Settings, get_settings
from engine import learning, population, sourcedrift, store
from engine.catalog import Catalog
from engine.customer import Context, Customer, process_batch, unprocessed
from engine.events import BadEvent, validate
from engine.identity import Anonymous, resolve
from engine.models import sign
from engine.money import Currencies
from engine.opportunity import AlertRules
from engine.rules import RuleError
from flows.logic import batched
from flows.models import ModelCache
from flows.sink import RedisSink
from flows.source import Item, RedisStreamSource

LOG = logging.getLogger("nextbest.flow")
INTERNAL = {"decision", "erase", "tick", "forget", "dead_letters", "adopt", "unlink"}


def parse_item(item: Item, latest: float | None = None) -> tuple[Any, ...]:
    p, seq, raw = item[:3]
    try:
        ev = _parse_entry(raw, validated=len(item) > 4 and bool(item[4]), latest=latest)
    except BadEvent as exc:
        return ("bad", raw, str(exc), p, seq)
    ev["_p"], ev["_seq"] = p, seq
    if ev["type"] == "dead_letters":  # the ingest path's dead-letter counts per source
        return ("counts", ev, p, seq)
    if ev["type"] in ("erase", "unlink") and len(item) > 3:
        ev["_id"] = item[3]  # records naming an erased customer are deleted once done
    return ("ok", ev)


def _parse_entry(raw: bytes, validated: bool = False,
                 latest: float | None = None) -> dict[str, Any]:
    """Internal records, and events the ingest path validated with this schema (the entry's
    mark, `events.SCHEMA`), as they are: validating again cost ~9 us of ~75 per event. Anything
    else is validated as `engine.events.parse` does (from the object already decoded)."""
    try:
        obj = orjson.loads(raw) if raw[:1] != b"(" else store.decode(raw)  # compressed records
    except orjson.JSONDecodeError as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    except (ValueError, zstandard.ZstdError) as exc:
        raise BadEvent(f"unreadable compressed record: {exc}") from None
    if isinstance(obj, dict) and (validated or obj.get("type") in INTERNAL and obj.get("_internal")):
        return obj
    return validate(obj, latest)  # `latest`: as ingest checks it (events from Kafka)


def parse_batch(items: list[Item], latest: float | None = None) -> list[tuple[Any, ...]]:
    """A batch of stream entries parsed in one call: a known customer's events leave together as
    one pair, (customer id, [events]), ready for the customer step; anything else as a longer
    tuple: ("anon", anonymous id, event), or `parse_item`'s "bad" and "counts" tuples. `latest`:
    the latest event time taken from entries no ingest path checked (`Settings.latest_ts`). Every
    item costs bytewax ~0.3-0.4 us per step it passes, and most events need no other step."""
    out: list[tuple[Any, ...]] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        t = parse_item(item, latest)
        if t[0] != "ok":
            out.append(t)
        elif needs_identity(ev := t[1]):
            out.append(("anon", ev["anonymous_id"], ev))
        else:
            groups.setdefault(str(ev["customer_id"]), []).append(ev)
    out += groups.items()
    return out


def _resolve_batch(state: Anonymous | None, evs: list[dict[str, Any]]) -> tuple[Any, list[Any]]:
    out: list[Any] = []
    for ev in evs:
        state, emitted = resolve(state, ev)
        out += emitted
    return state, out


def needs_identity(ev: dict[str, Any]) -> bool:
    return ev["type"] == "identify" or "customer_id" not in ev


TO_POPULATION = ("summary", "tally")  # the customer step's outputs for the steps after it
TO_MODELS = ("example", "impression", "feedback", "exposure", "conversion")
ROUTED = {*TO_POPULATION, *TO_MODELS}  # the rest go to the sink


def bundle(out: list[Any], evs: list[dict[str, Any]]) -> list[Any]:
    """The customer step's outputs with everything bound for the sink as one ("writes", [...])
    item, and the events' progress as the highest entry per partition (the sink keeps the
    highest anyway): ~1.7 items per event went through four more steps to the sink before.
    The profile document leaves encoded: encoded in the sink, after the whole batch had passed
    through the customer step, it took ~8 us against ~3 us here (the sink compresses the
    batch's documents one after the other, the dictionary's tables warm)."""
    routed, writes = [], []
    for o in out:
        if o[0] == "profile":  # encoded here, while the document is in the CPU's caches
            o = ("document", o[1], store.encode(o[2]), o[2]["t"])
        (routed if o[0] in ROUTED else writes).append(o)
    progress: dict[int, int] = {}
    for ev in evs:
        if "_p" in ev and ev["_seq"] > progress.get(ev["_p"], -1):
            progress[ev["_p"]] = ev["_seq"]
    writes += [("progress", p, seq) for p, seq in progress.items()]
    routed.append(("writes", writes))
    return routed


def _reloading(path: Path, load: Callable[[Path], Any], default: Any,
               every_s: float = 1.0) -> Callable[[], Any]:
    """`load(path)`, re-read when the file changes, looked at once per `every_s` (a stat per
    batch cost ~1.5 us per event); a broken edit keeps the last good value, and says why in
    the flow's log, once per edit."""
    state: dict[str, Any] = {"value": default, "mtime": None, "next": 0.0}

    def get() -> Any:
        now = time.monotonic()
        if now >= state["next"]:
            state["next"] = now + every_s
            try:
                mtime = path.stat().st_mtime
                if mtime != state["mtime"]:
                    state["mtime"] = mtime  # a broken version is read once, not once a second
                    state["value"] = load(path)
            except OSError:
                pass  # no file (yet): the current value stands
            except RuleError as exc:
                LOG.warning("%s: keeping the last good version: %s", path.name, exc)
        return state["value"]

    return get


def _alert_rules(settings: Settings) -> Any:
    """rules/alerts.yaml, re-read when it changes; a broken edit keeps the last good rules."""
    return _reloading(settings.rules_dir / "alerts.yaml", AlertRules.load, AlertRules())


def _catalog_lookups(settings: Settings) -> tuple[Any, Any]:
    """Reward window and category of an offer, from the catalog (re-read when it changes)."""
    catalog = _reloading(settings.rules_dir / "offers.yaml", Catalog.load, None)

    def offer(offer_id: str) -> Any:
        current = catalog()
        return current.by_id.get(offer_id) if current else None

    def window(offer_id: str) -> float:
        o = offer(offer_id)
        return (o.reward_window_days if o else 7.0) * 86400.0

    def category(offer_id: str) -> str | None:
        o = offer(offer_id)
        return o.category if o else None

    return window, category


def build_flow(
    settings: Settings, source: Source[Any] | None = None, sink: Sink[Any] | None = None,
    kafka: Source[Any] | None = None,
) -> Dataflow:
    url = settings.redis_url
    secret = settings.secret()
    snap = settings.flow_recovery  # without recovery no one reads the state snapshots
    cache = ModelCache(url, secret)
    window, category = _catalog_lookups(settings)
    ctx = Context(models=cache.get, value_params=cache.value_params, reward_window=window,
                  category=category,
                  alert_rules=_alert_rules(settings),
                  churn_threshold=settings.churn_threshold, lateness=settings.lateness_s,
                  currencies=Currencies(settings.currency, settings.exchange_rates))
    source = source or RedisStreamSource(str(url), settings.partitions, settings.flow_batch)
    sink = sink or RedisSink(str(url), settings.deadletter_maxlen, partitions=settings.partitions,
                             dedup_ttl=settings.dedup_ttl_s, maxlen=settings.stream_maxlen)

    flow = Dataflow("nextbest")
    inputs = op.input("events", flow, source)
    if settings.source == "kafka":  # a Kafka topic beside the streams (flows/kafka.py)
        from flows.kafka import kafka_input

        inputs = op.merge("inputs", inputs, kafka_input(flow, settings, kafka))
    parsed = op.flat_map_batch("parse", inputs,
                               lambda items: parse_batch(items, settings.latest_ts()))
    known = op.branch("known", parsed, lambda t: len(t) == 2)  # (customer id, [events])
    anon = op.branch("anonymous", known.falses, lambda t: t[0] == "anon")
    dead = op.branch("dead_tallies", op.flat_map("dead_letter", anon.falses, _dead_letter),
                     lambda o: o[0] == "tally")

    by_anon = op.map("by_anonymous_id", anon.trues, lambda t: (t[1], t[2]))
    resolved = op.key_rm("resolved", batched("identity", by_anon, _resolve_batch, snap))
    is_event = op.branch("identity_events", resolved, lambda o: o[0] == "event")
    linked = op.map("linked", is_event.trues, lambda o: (str(o[1]["customer_id"]), [o[1]]))

    pace = sourcedrift.Pace()  # late events: beyond what this worker's read skew explains

    def customer_step(state: Customer | None, groups: list[list[dict[str, Any]]],
                      ) -> tuple[Any, Iterable[Any]]:
        evs = groups[0] if len(groups) == 1 else [ev for group in groups for ev in group]
        tally = sourcedrift.tally(evs, state.state.last_ts if state else None,
                                  pace.bound(ctx.lateness))
        try:
            state, out = process_batch(state, evs, ctx)
        except Exception as exc:  # a fault no check foresaw: its events are dead-lettered with
            LOG.exception("customer step failed")  # why, and the flow goes on (a crash would
            return state, bundle([unprocessed(ev, exc) for ev in evs], evs)  # meet them again)
        if tally:
            newest = max(ev["ts"] for ev in evs)
            pace.see(newest, time.monotonic())
            out.append(("tally", tally, newest))
        return state, bundle(out, evs)

    by_customer = op.merge("by_customer", known.trues, linked)
    outputs = op.key_rm("customer_out", batched("customer", by_customer, customer_step, snap))
    to_population = op.branch("to_population", outputs, lambda o: o[0] in TO_POPULATION)
    tallies = op.branch("to_sources", to_population.trues, lambda o: o[0] == "tally")
    by_population = op.key_on("by_population", tallies.falses, lambda o: o[1])
    valued = op.key_rm("valued", batched("population", by_population, population.step, snap))
    to_models = op.branch("to_models", to_population.falses, lambda o: o[0] in TO_MODELS)

    def model_step(state: learning.ModelState | None, items: list[tuple[Any, ...]]) -> tuple[Any, list[Any]]:
        out: list[Any] = []
        for item in items:
            state, fired = learning.apply(state, item[1], item)
            for kind in fired:  # "quality", "inputs"
                if alert := learning.drift_alert(state, kind):
                    out.append(("alert", alert.to_dict()))
        assert state is not None
        return state, out + publication(state)

    def publication(state: learning.ModelState) -> list[Any]:
        what = learning.to_publish(state, settings.model_publish_every, time.time())
        if what == "model":
            return [("model", state.model.name, sign(state.publishable(), secret), state.meta())]
        return [("model_meta", state.model.name, state.meta())] if what == "meta" else []

    by_model = op.key_on("by_model", to_models.trues, lambda o: o[1])
    learned = op.key_rm("learned", batched(  # learning not yet published is, a moment later
        "learn", by_model, model_step, snap, wake=learning.publish_at,
        on_wake=lambda state: (state, publication(state))))
    monitored = _source_monitor(op.merge("all_tallies", tallies.trues, dead.trues), snap)
    op.output("redis", op.merge("writes", dead.falses, is_event.falses, to_models.falses, learned,
                                valued, monitored), sink)
    return flow


def _dead_letter(t: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """A bad stream entry goes to the dead-letter stream; both it and the ingest path's
    dead-letter counts feed the source spike check (engine/sourcedrift.py)."""
    if t[0] == "counts":
        return [("tally", sourcedrift.record_tally(t[1]), 0.0), ("progress", t[2], t[3])]
    tally = {sourcedrift.channel_of_raw(t[1]): [0, 0, 1]}
    return [("dlq", t[1], t[2], f"partition {t[3]}"), ("progress", t[3], t[4]),
            ("tally", tally, 0.0)]


def _source_monitor(tallies: Any, snap: bool = True) -> Any:
    """Per-batch sums of the tallies, then one `SourceMonitor` (a single key) raising
    `model_drift` alerts on dead-letter or lateness spikes and publishing its state."""
    def combine(items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [("tally", sourcedrift.combine([o[1] for o in items]), max(o[2] for o in items))]

    def step(mon: sourcedrift.SourceMonitor | None, items: list[tuple[Any, ...]],
             ) -> tuple[Any, list[Any]]:
        mon = mon or sourcedrift.SourceMonitor()
        out: list[Any] = []
        for _, counts, ts in items:
            out += [("alert", sourcedrift.spike_alert(s, mon.ts).to_dict())
                    for s in mon.update(counts, ts)]
        return mon, out + [("source_state", mon.state())]

    summed = op.flat_map_batch("sum_tallies", tallies, combine)
    by_key = op.key_on("by_sources", summed, lambda _: "sources")
    return op.key_rm("monitored", batched("sources", by_key, step, snap))


def _flow_from_env() -> Dataflow:
    settings = get_settings()
    if not settings.redis_url:
        raise SystemExit("REDIS_URL must be set for the flow (nextbest up sets it)")
    return build_flow(settings)


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run flows.main:flow` builds the flow lazily from the environment
    if name == "flow":
        return _flow_from_env()
    raise AttributeError(name)


EPOCH = timedelta(seconds=2)
