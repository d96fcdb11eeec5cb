"""Bad input never crashes anything: property tests over the event parser, schemathesis over the
live API's OpenAPI schema, and hostile bodies that must get a 4xx with a message."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from config import Settings
from engine import store
from engine.events import SCHEMA, TYPES, BadEvent, parse, validate
from flows.main import parse_item
from nextbest.engine import Engine
from nextbest.redis_server import free_port
from tests.conftest import ALL, KEY

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | st.text(max_size=8)},
    optional={"event_id": st.text(max_size=200) | st.integers(), "ts": json_values,
              "customer_id": st.text(max_size=200) | st.none(), "amount": json_values,
              "attributes": json_values, "items": json_values, "sentiment": json_values,
              "granted": json_values, "value": json_values, "purpose": st.text(max_size=12)},
)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_parser_rejects_arbitrary_bytes_only_with_bad_event(raw: bytes) -> None:
    try:
        parse(raw)
    except BadEvent as exc:
        assert str(exc)


@given(event_like)
@example({"type": "click", "event_id": "0", "ts": 0, "granted": [-2 ** 63 - 1]})  # past 64 bits
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_validated_events_keep_the_contract(obj: dict) -> None:
    try:
        ev = validate(obj)
    except BadEvent as exc:
        assert str(exc)
        return
    assert ev["type"] in TYPES and 1 <= len(ev["event_id"]) <= 128
    assert isinstance(ev["ts"], float)
    if ev["type"] != "click":
        assert ev["customer_id"]
    if ev["type"] == "transaction":
        assert ev["amount"] >= 0
    orjson.dumps(ev)  # always serialisable
    # what is stored is what validating it again gives: the flow trusts the stream's mark
    stored = orjson.loads(store.encode(ev))
    assert stored == validate(stored)
    marked = (0, 1, store.encode(ev), "1-0", True)
    assert parse_item(marked) == parse_item(marked[:4] + (False,))


def test_the_flow_validates_entries_not_marked_with_its_own_schema() -> None:
    bad = orjson.dumps({"event_id": "x1", "type": "transaction", "ts": 1.0, "customer_id": "c1",
                        "amount": -5})
    for item in ((0, 1, bad, "1-0", False), (0, 1, bad, "1-0"), (-1, 1, bad, "")):
        assert parse_item(item)[0] == "bad" and "amount" in parse_item(item)[2]
    assert SCHEMA and len(SCHEMA) == 12


@pytest.fixture(scope="module")
def live(redis_server, tmp_path_factory) -> Iterator[str]:
    s = Settings(redis_url=redis_server.url, data_dir=tmp_path_factory.mktemp("live"),
                 api_port=free_port(), api_keys={KEY: ALL}, model_secret="x", max_batch=50,
                 max_body_bytes=64 * 1024)
    with Engine(s, flow=False) as engine:
        yield engine.api_url


@pytest.fixture(scope="module")
def api_schema(live: str):
    return schemathesis.openapi.from_url(live + "/openapi.json")


def test_no_server_errors_for_any_operation(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    for op in operations:
        if op.path.endswith("/stream"):
            continue  # endless by design; covered by the SSE tests

        @given(op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
            response = case.call(timeout=10)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])

        check()


def post(url: str, content: bytes, headers: dict | None = None) -> httpx.Response:
    h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", **(headers or {})}
    return httpx.post(url + "/v1/events", content=content, headers=h, timeout=10)


@pytest.mark.parametrize("body, status", [
    (b"{" * 5000 + b"}" * 5000, 400),                       # deep JSON
    (b'\xff\xfe{"type": "click"}', 400),                      # invalid UTF-8
    (b"[" + b",".join([b'{"type":"click"}'] * 51) + b"]", 413),  # batch over the limit
    (b'{"event_id": "' + b"x" * 70_000 + b'"}', 413),         # body over the limit
    (b"", 400),                                               # empty
    (b"null", 202),                                           # one bad event, rejected by index
])
def test_hostile_bodies_get_a_4xx_with_a_message(live: str, body: bytes, status: int) -> None:
    res = post(live, body)
    assert res.status_code == status, res.text
    if status >= 400:
        assert res.json()["error"]["message"]
    else:
        assert res.json()["rejected"][0]["index"] == 0


def test_huge_strings_inside_an_event_are_rejected_not_crashing(live: str) -> None:
    ev = {"event_id": "e" * 129, "type": "click", "ts": 1, "customer_id": "c" * 50}
    res = post(live, orjson.dumps(ev))
    assert res.status_code == 202 and "event_id" in res.json()["rejected"][0]["error"]
    res = post(live, orjson.dumps({**ev, "event_id": "ok", "page": "p" * 5000}))
    assert res.status_code == 202 and res.json()["rejected"]


def test_every_free_text_field_takes_a_number_as_its_text() -> None:
    """`TEXT_FIELDS` (whose whole floats `validate` turns to digits) names exactly the events'
    free-text fields: strings bounded as ids or short text, with no pattern nor choices."""
    from engine.events import TEXT_FIELDS, _adapter

    found = set()
    for model in _adapter.json_schema()["$defs"].values():
        for name, prop in model.get("properties", {}).items():
            for option in prop.get("anyOf", [prop]):
                if option.get("type") == "string" and option.get("maxLength") in (64, 128, 256) \
                        and not {"pattern", "enum", "const"} & set(option):
                    found.add(name)
    assert found == TEXT_FIELDS
    base = {"event_id": 7.0, "type": "transaction", "ts": 1, "customer_id": 2.5, "amount": 1,
            "order_id": 10, "items": [{"product_id": 3.0, "category": 4}, {"quantity": 2.0}]}
    ev = validate(base)
    assert (ev["event_id"], ev["customer_id"], ev["order_id"]) == ("7", "2.5", "10")
    assert ev["items"][0]["product_id"] == "3" and ev["items"][0]["category"] == "4"
    assert ev["items"][1]["quantity"] == 2.0 and base["event_id"] == 7.0  # the input untouched


def test_yes_and_no_from_a_table_are_labels_and_other_words_are_errors() -> None:
    """Telco's Churn column holds "Yes"/"No", the bank campaign's y "yes"/"no": an outcome or a
    consent sent so was dead-lettered as not a boolean; the words tables use are read as one."""
    base = {"event_id": "o", "type": "outcome", "ts": 1_767_225_600, "customer_id": "c",
            "name": "churned"}
    assert [validate(base | {"value": v})["value"] for v in ("Yes", "no", "TRUE", "0")] == \
        [True, False, True, False]
    assert validate(base | {"value": 3})["value"] == 3.0  # numbers stay numbers (non-zero: true)
    consent = {"event_id": "g", "type": "consent", "ts": 1_767_225_600, "customer_id": "c",
               "purpose": "marketing"}
    assert validate(consent | {"granted": "No"})["granted"] is False
    for bad in ("maybe", None, ""):
        with pytest.raises(BadEvent, match="^value"):
            validate(base | {"value": bad})


def test_currencies_in_either_case_and_what_a_table_means_by_a_negative_amount() -> None:
    """Stripe exports its currencies in lower case; an order cancelled in Online Retail is a
    negative quantity: the first is read, the second gets a reason that says what to send."""
    tx = {"event_id": "t", "type": "transaction", "ts": 1.7e9, "customer_id": "c", "amount": 3.0}
    assert validate({**tx, "currency": "usd"})["currency"] == "USD"
    for bad, said in ((("currency", "US$")), "'US$' is not an ISO 4217 code"), \
                     ((("amount", -5.0)), 'kind "refund" with a positive amount'), \
                     ((("items", [{"quantity": -2, "unit_price": 1.0}])), 'kind "refund" transaction'):
        with pytest.raises(BadEvent, match=said.replace("$", r"\$")):
            validate({**tx, bad[0]: bad[1]})


def test_choices_and_durations_as_tables_write_them(api) -> None:
    """A call centre's export capitalises its choices and writes talk time as H:MM:SS; a
    clickstream's spells actions out: read as meant. What cannot be read names its field (a
    call's `outcome` was left out of its own reason) and, where it can, what to send."""
    call = {"event_id": "k", "type": "call", "ts": 1.7e9, "customer_id": "c"}
    got = validate({**call, "direction": "Inbound", "outcome": "Resolved", "duration_s": "0:02:23"})
    assert (got["direction"], got["outcome"], got["duration_s"]) == ("inbound", "resolved", 143.0)
    click = {"event_id": "v", "type": "click", "ts": 1.7e9, "customer_id": "c"}
    assert validate({**click, "action": "Add to cart"})["action"] == "add_to_cart"
    for bad, said in (({"outcome": "Solved"}, "^outcome: Input should be 'resolved'"),
                      ({"sentiment": 4}, r"a 1-5 rating is \(rating - 3\) / 2"),
                      ({"ts": 1.7e15}, "reads as microseconds"),
                      ({"outcome": "Resolved", "duration_s": "2 min"}, "^duration_s:")):
        with pytest.raises(BadEvent, match=said):
            validate({**call, **bad})
    res = api.post("/v1/events", json=[{**call, "event_id": "k2", "outcome": "Escalated"},
                                       {**click, "action": "Page View"}]).json()
    assert res["accepted"] == 2 and res["rejected"] == []


def test_an_event_type_in_capitals_and_a_time_without_its_offset() -> None:
    """"Click" is a click; a time a table wrote without its offset says how to give one."""
    base = {"event_id": "x", "ts": 1.7e9, "customer_id": "c"}
    assert validate({**base, "type": "Click"})["type"] == "click"
    with pytest.raises(BadEvent, match=r"has no UTC offset \(add Z for UTC"):
        validate({**base, "type": "click", "ts": "2010-12-01 08:26:00"})
    with pytest.raises(BadEvent, match="^type: 'Clicks' is not one of"):
        validate({**base, "type": "Clicks"})


def test_numbers_are_numbers_and_amounts_within_reach() -> None:
    """true is not an amount (pydantic reads it as 1.0), and one absurd amount is refused
    rather than setting every customer's CLV."""
    sale = {"event_id": "n", "type": "transaction", "ts": 1.7e9, "customer_id": "c", "amount": 9.5}
    for bad, said in [({"amount": True}, "amount: must be a number, not a boolean"),
                      ({"amount": 1e300}, "amount: Input should be less than or equal to"),
                      ({"items": [{"quantity": False}]}, "items.0.quantity: must be a number"),
                      ({"type": "call", "sentiment": True}, "sentiment: must be a number")]:
        with pytest.raises(BadEvent, match=said):
            validate({**sale, **bad})
    assert validate({**sale, "amount": 1e9})["amount"] == 1e9


def test_what_exports_write_is_read_as_rfc3339_and_the_contract_allow() -> None:
    """RFC 3339's lower-case z and leap second, a missing list written as null, a long
    invoice, and a customer id as long as an e-mail address may be."""
    base = {"event_id": "r", "type": "transaction", "ts": 1.7e9, "customer_id": "c", "amount": 1.0}
    assert validate({**base, "ts": "2024-01-02T10:00:00z"})["ts"] == 1704189600.0
    leap = validate({**base, "ts": "2016-12-31T23:59:60Z"})["ts"]
    assert leap == validate({**base, "ts": "2017-01-01T00:00:00Z"})["ts"]
    assert validate({**base, "items": None})["items"] == []
    lines = [{"product_id": f"p{i}", "quantity": 1, "unit_price": 0.5} for i in range(1200)]
    assert len(validate({**base, "items": lines})["items"]) == 1200
    email = "a" * 240 + "@example.com"
    assert validate({**base, "customer_id": email})["customer_id"] == email
    with pytest.raises(BadEvent, match="event_id: String should have at most 128"):
        validate({**base, "event_id": "e" * 129})
