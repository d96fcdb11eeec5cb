"""The flow's cheaper plumbing says the same as the plain one: grouped parsing, bundled writes,
stream reads as Redis sent them, all conditions in one evaluation, JSON without the slow option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import store
from engine.catalog import Catalog
from engine.opportunity import AlertRules
from engine.rules import Condition, Conditions
from flows.main import bundle, parse_batch
from flows.sink import _flat
from flows.source import _StreamPartition

RULES = Path(__file__).parent.parent / "rules"


def entry(p: int, seq: int, ev: dict[str, Any] | bytes) -> tuple[Any, ...]:
    raw = ev if isinstance(ev, bytes) else orjson.dumps(ev)
    return (p, seq, raw, f"{seq}-0", False)


def click(eid: str, ts: float, cid: str | None = None, anon: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "click", "event_id": eid, "ts": ts, "page": "home"}
    if cid:
        ev["customer_id"] = cid
    if anon:
        ev["anonymous_id"] = anon
    return ev


def test_parse_batch_groups_known_customers_in_order_and_tags_the_rest() -> None:
    items = [entry(0, 1, click("e1", 1.0, "c1")), entry(1, 1, click("e2", 2.0, "c2")),
             entry(0, 2, click("e3", 3.0, anon="a9")), entry(0, 3, b"{not json"),
             entry(0, 4, click("e4", 4.0, "c1")), entry(1, 2, {"type": "click"})]
    out = parse_batch(items)
    pairs = {t[0]: t[1] for t in out if len(t) == 2}
    assert [ev["event_id"] for ev in pairs["c1"]] == ["e1", "e4"]  # a customer's order kept
    assert [ev["event_id"] for ev in pairs["c2"]] == ["e2"]
    assert [(ev["_p"], ev["_seq"]) for ev in pairs["c1"]] == [(0, 1), (0, 4)]
    anon = [t for t in out if t[0] == "anon"]
    assert len(anon) == 1 and anon[0][1] == "a9" and anon[0][2]["event_id"] == "e3"
    bad = [t for t in out if t[0] == "bad"]
    assert [(t[3], t[4]) for t in bad] == [(0, 3), (1, 2)]  # partition and entry, to count them
    assert all(t[2] for t in bad)  # each with its reason
    assert len(out) == 2 + 1 + 2  # nothing lost, nothing twice


def test_bundle_keeps_every_write_and_the_highest_progress_per_partition() -> None:
    out = [("profile", "c1", {"t": 1.0}), ("example", "m", {}, True, 1.0, {}),
           ("alert", {"alert_id": "x"}), ("summary", "population", "c1", {}, 1.0)]
    evs = [{"_p": 0, "_seq": 7}, {"_p": 0, "_seq": 9}, {"_p": 2, "_seq": 3}, {"type": "tick"}]
    routed = bundle(list(out), evs)
    assert [o[0] for o in routed[:-1]] == ["example", "summary"]
    kind, writes = routed[-1]
    assert kind == "writes"
    document = ("document", "c1", b'{"t":1.0}', 1.0)  # encoded, with its time for the clock
    assert writes == [document, out[2], ("progress", 0, 9), ("progress", 2, 3)]
    items = [("link", "a", "c"), routed[-1], ("dlq", b"x", "bad", "p0")]
    assert [i[0] for i in _flat(items)] == ["link", "document", "alert", "progress", "progress", "dlq"]


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_source_reads_entries_as_redis_sends_them(redis_url: str, r: redis.Redis,
                                                     protocol: int) -> None:
    key = store.stream(0)
    r.xadd(key, {"e": b'{"a":1}', "n": 5, "v": "mark"})
    r.xadd(key, {"e": b'{"a":2}'})  # written without a number: counted on
    r.xadd(key, {"v": "mark", "e": b'{"a":3}', "n": 9})  # fields in another order
    part = _StreamPartition(f"{redis_url}?protocol={protocol}", 0, 2, None)
    part._schema = b"mark"
    first, second = part.next_batch(), part.next_batch()
    assert [i[:3] + i[4:] for i in first + second] == [
        (0, 5, b'{"a":1}', True), (0, 6, b'{"a":2}', False), (0, 9, b'{"a":3}', True)]
    assert part.next_batch() == [] and part.snapshot() == (second[-1][3], 9)
    part.close()


def shipped_conditions() -> list[Condition]:
    rules = AlertRules.load(RULES / "alerts.yaml")
    catalog = Catalog.load(RULES / "offers.yaml")
    return [o.when for o in rules.opportunities] + [
        c for conds in catalog.conditions.values() for c in conds.values()]


values = st.none() | st.booleans() | st.integers(-5, 2000) | st.floats(-5, 2000) | st.text(max_size=3)
FIELDS = ["interest_electronics", "bought_electronics", "bought_travel", "total_spend",
          "payment_count_1d", "calls_reason_complaint", "calls_reason_billing", "calls_unresolved",
          "has_travel_insurance", "gold_card", "collections", "age", "churn_risk"]
section = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)


@given(st.fixed_dictionaries({"features": section, "context": st.dictionaries(st.sampled_from(["page"]), values)},
                             optional={"attributes": section, "scores": section}))
@settings(max_examples=300, deadline=None)
def test_conditions_in_one_evaluation_answer_as_each_alone(data: dict[str, Any]) -> None:
    conds = shipped_conditions()
    assert len(conds) >= 8
    each = [c.test(data) for c in conds]
    assert Conditions(conds).test(data) == each
    assert SHARED.test(data) == each  # one object across examples: its kept answers too


SHARED = Conditions(shipped_conditions())


def test_a_condition_that_cannot_evaluate_does_not_change_the_others() -> None:
    a = Condition.compile("features.x > 1", "a")
    b = Condition.compile("features.x > 'text'", "b")  # a number against a string
    c = Condition.compile("features.y == 2", "c")
    data = {"features": {"x": 5, "y": 2}}
    assert [a.test(data), b.test(data), c.test(data)] == [True, False, True]
    assert Conditions([a, b, c]).test(data) == [True, False, True]
    whole = Condition.compile("features != null", "whole")  # reads the whole object
    assert Conditions([a, whole]).test(data) == [True, True]
    assert Conditions([a, whole]).test({}) == [False, False]


def test_the_catalog_names_the_first_false_condition_of_each_offer(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text("offers:\n"
                    "  - {id: a, value: 1, eligible: 'features.x > 1', suitable: 'features.y > 1'}\n"
                    "  - {id: b, value: 1, applicable: 'features.y > 1', suitable: 'features.x > 9'}\n"
                    "  - {id: c, value: 1}\n")
    cat = Catalog.load(path)
    assert cat.failing({"features": {"x": 5, "y": 0}}) == {"a": "suitable", "b": "applicable"}
    assert cat.failing({"features": {"x": 0, "y": 0}}) == {"a": "eligible", "b": "applicable"}
    assert cat.failing({"features": {"x": 10, "y": 2}}) == {}


def test_json_with_keys_that_are_not_strings_still_encodes() -> None:
    assert orjson.loads(store.encode({"a": 1, 2: {3.5: [1]}})) == {"a": 1, "2": {"3.5": [1]}}
    assert orjson.loads(store.encode({"s": {3, 1}})) == {"s": [1, 3]}
    with pytest.raises(TypeError):
        store.encode({"x": object()})


def test_customer_state_holds_no_decision_list_and_erasure_names_pending_decisions() -> None:
    from engine.customer import Context, process_batch

    decided = [{"type": "decision", "event_id": f"d:{i}", "decision_id": f"dec{i}",
                "customer_id": "c1", "ts": 1000.0 + i, "channel": "web", "offers": ["a"],
                "held_out": [], "x": {"f": 1.0}} for i in range(3)]
    c, _ = process_batch(None, decided, Context())
    assert c is not None and list(c.pending) == ["dec0", "dec1", "dec2"]
    assert not hasattr(c, "decisions")
    restore, (rest,) = c.__reduce__()
    rest["decisions"] = ["dec0", "old"]  # a snapshot from before the API's decision index
    back = restore(rest)
    assert not hasattr(back, "decisions") and list(back.pending) == list(c.pending)
    erase = {"type": "erase", "_internal": True, "customer_id": "c1", "event_id": "erase:1",
             "ts": 2000.0}
    _, out = process_batch(back, [erase], Context())
    assert [o[3] for o in out if o[0] == "erase"] == [["dec0", "dec1", "dec2"]]


def test_zstandard_is_imported_with_the_store_not_in_a_worker_thread() -> None:
    """Imported lazily, zstandard was first loaded inside bytewax's worker threads, and a
    2 processes x 2 workers flow crashed at start about one time in four (`test_scale`)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, engine.store; "
                          "print('zstandard' in sys.modules)"], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_decision_records_are_stored_compressed_and_read_back_whole() -> None:
    x = {f"feature_{i}": 0.0 if i % 3 else i / 7 for i in range(150)}
    record = {"type": "decision", "_internal": True, "event_id": "d:1", "decision_id": "1",
              "customer_id": "c1", "ts": 10.0, "offers": ["a"], "x": x}
    _, (payload, *_) = store.ingest_args(record, 4, 60, 1000)
    assert payload[:1] == b"(" and len(payload) < len(store.encode(record)) / 2
    assert store.decode(payload) == record
    [(cid, [ev])] = parse_batch([entry(0, 1, payload)])
    assert cid == "c1" and ev["x"] == x and ev["_seq"] == 1


def test_events_are_stored_compressed_with_their_own_dictionary() -> None:
    """~180 B of JSON -> ~45 B; the flow reads them whole, and events appended as plain JSON
    (before this) or compressed with another known dictionary are read as well."""
    click = {"type": "click", "event_id": "e1", "customer_id": "c1", "ts": 1_767_225_600.5,
             "action": "product_view", "category": "electronics", "channel": "web",
             "session_id": "s-81723"}
    _, (payload, *_) = store.ingest_args(click, 4, 60, 1000)
    events = zstandard.ZstdCompressionDict(store._dictionary("event.zdict")).dict_id()
    assert zstandard.get_frame_parameters(payload).dict_id == events
    assert len(payload) * 2 < len(store.encode(click)) and store.decode(payload) == click
    plain, older = store.encode(click), store.compress(store.encode(click), "profile")
    for n, raw in enumerate((payload, plain, older), 1):
        [(cid, [ev])] = parse_batch([entry(0, n, raw)])
        assert cid == "c1" and {k: v for k, v in ev.items() if k[0] != "_"} == click


def test_a_corrupt_or_oversized_compressed_entry_is_dead_lettered_with_a_reason() -> None:
    big = zstandard.ZstdCompressor().compress(b"{" + b" " * (store.MAX_INFLATED + 1) + b"}")
    out = parse_batch([entry(0, 1, b"(not zstd"), entry(0, 2, big), entry(0, 3, b"(")])
    assert [(o[0], o[4]) for o in out] == [("bad", 1), ("bad", 2), ("bad", 3)]
    assert all("unreadable compressed record" in o[2] for o in out)
    assert "too large" in out[1][2]


def test_the_api_appends_its_decision_record_compressed(api: Any, r: redis.Redis) -> None:
    res = api.post("/v1/decisions", json={"customer_id": "c-zip", "channel": "web"})
    assert res.status_code == 200, res.text
    did = res.json()["decision_id"]
    raws = [f[b"e"] for p in range(2) for _, f in r.xrange(store.stream(p))]
    [raw] = [x for x in raws if store.decode(x)["decision_id"] == did]
    record = store.decode(raw)
    assert raw[:1] == b"(" and record["customer_id"] == "c-zip" and record["x"]
    # with the dictionary trained on decision records: ~3x smaller than with the profile
    # documents' one, which records written before it used and which are still read
    decisions = zstandard.ZstdCompressionDict(store._dictionary("decision.zdict")).dict_id()
    assert zstandard.get_frame_parameters(raw).dict_id == decisions
    older = store.compress(store.encode(record), "profile")
    assert len(raw) * 2 < len(older) and store.decode(older) == record
    # numbered like every entry, but without a dedup key: its id was made for this one append
    assert not any(r.exists(store.seen(p, "d:" + did)) for p in range(2))
    assert r.keys(store.seen(0, "d:*").replace("{p0}", "*")) == []


def test_an_internal_record_can_trim_its_stream(r: redis.Redis) -> None:
    sha = r.script_load(store.RECORD_LUA)
    assert sha == store.RECORD_SHA
    record = {"type": "decision", "_internal": True, "event_id": "d:t", "customer_id": "c-trim"}
    for i in range(1000):
        keys, args = store.record_args({**record, "event_id": f"d:t{i}"}, 2, 10)
        assert r.evalsha(sha, len(keys), *keys, *args) == i + 1
    assert r.xlen(keys[0]) <= 110  # trimmed by whole nodes of 100 entries ("~")
    last = r.xrevrange(keys[0], count=1)[0][1]
    assert last[b"n"] == b"1000" and store.decode(last[b"e"])["event_id"] == "d:t999"
