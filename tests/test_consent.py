"""Consent per purpose and channel, latest by event time, in any arrival order; `marketing`
gates offers and a withdrawn `personalization` leaves the profile out of decisions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine import consent
from engine.consent import apply, effective, merge, stamped
from tests.conftest import ev, get_json

T0 = 1_767_225_600.0  # 2026-01-01
PURPOSES, CHANNELS = ("marketing", "personalization"), (None, "web", "email", "sms")


def events(rng: random.Random, n: int) -> list[dict[str, Any]]:
    times = rng.sample(range(1000), n)  # distinct event times: "latest" is unambiguous
    out = []
    for i, ts in enumerate(times):
        e = {"event_id": f"e{i}", "purpose": rng.choice(PURPOSES), "ts": float(ts),
             "granted": rng.random() < 0.5}
        if channel := rng.choice(CHANNELS):
            e["channel"] = channel
        out.append(e)
    return out


def truth(evs: list[dict[str, Any]], purpose: str, channel: str | None) -> bool | None:
    """The spec: the latest record for the purpose on every channel or on this one."""
    mine = [e for e in evs if e["purpose"] == purpose and e.get("channel") in (None, channel)]
    return max(mine, key=lambda e: e["ts"])["granted"] if mine else None


@pytest.mark.parametrize("seed", range(30))
def test_consent_is_the_latest_record_for_the_channel_or_all_in_any_arrival_order(seed: int) -> None:
    rng = random.Random(seed)
    evs = events(rng, rng.randint(1, 14))
    arrival = rng.sample(evs, len(evs))
    values: dict[str, bool] = {}
    stamps: dict[str, tuple[float, str]] = {"a:plan": (5.0, "x")}  # shared with attributes
    for e in arrival:
        apply(values, stamps, e, prefix="c:")
    for purpose in PURPOSES:
        for channel in CHANNELS:
            assert effective(values, purpose, channel) == truth(evs, purpose, channel), \
                (purpose, channel, values)
    assert stamps["a:plan"] == (5.0, "x")

    # the API: the document as the flow wrote it after some of the events, and the consent hash
    # the ingest path wrote for all of them (latest per record), merged
    folded = arrival[: rng.randint(0, len(arrival))]
    doc_values: dict[str, bool] = {}
    doc_stamps: dict[str, tuple[float, str]] = {}
    for e in folded:
        apply(doc_values, doc_stamps, e, prefix="c:")
    doc = {"c": doc_values, "ct": stamped(doc_values, doc_stamps, "c:"), "t": 2000.0}
    ingested: dict[bytes, bytes] = {}
    for e in arrival:  # CONSENT_LUA: the latest by event time per record
        name = consent.key(e["purpose"], e.get("channel")).encode()
        if e["ts"] >= float(ingested.get(name + b":ts", b"-1")):
            ingested[name], ingested[name + b":ts"] = (b"1" if e["granted"] else b"0",
                                                       str(e["ts"]).encode())
    merged, _ = merge(doc, ingested)
    for purpose in PURPOSES:
        for channel in CHANNELS:
            assert effective(merged, purpose, channel) == truth(evs, purpose, channel)


def test_records_for_single_channels_are_bounded() -> None:
    values: dict[str, bool] = {}
    stamps: dict[str, tuple[float, str]] = {}
    for i in range(40):
        apply(values, stamps, {"purpose": "marketing", "channel": f"ch{i}", "granted": True,
                               "ts": float(i), "event_id": f"e{i}"})
    assert len(values) == consent.MAX_CHANNELS == len(stamps)
    assert "marketing/ch39" in values and "marketing/ch23" not in values


def test_consent_by_channel_and_personalization_through_the_api(api, flow, settings) -> None:
    settings.control_share = 0.0
    cid = "cz"
    api.post("/v1/events", json=[
        ev("cz-buy", "transaction", T0, cid, amount=500.0),
        ev("cz-c1", "consent", T0, cid, purpose="marketing", granted=True)])
    flow.drain()
    body = {"customer_id": cid, "channel": "call_center", "offers": ["gold_card"]}

    def served(**over: Any) -> dict[str, Any]:
        return api.post("/v1/decisions", json={**body, **over}).json()

    d = served()  # gold_card: a marketing offer for customers who spent 100 or more
    assert [o["offer_id"] for o in d["offers"]] == ["gold_card"] and d["personalized"] is True
    assert served(offers=["gold_crad"])["excluded"] == {"not in the catalog": 1}

    # withdrawn for e-mail only: still offered by the agent, not by e-mail
    api.post("/v1/events", json=[ev("cz-c2", "consent", T0 + 60, cid, purpose="marketing",
                                    granted=False, channel="email")])
    for _ in range(2):  # read at once (the ingest path's record), then from the flow's document
        email = served(channel="email")
        assert email["offers"] == [] and email["excluded"] == {"no marketing consent": 1}
        assert [o["offer_id"] for o in served()["offers"]] == ["gold_card"]
        flow.drain()

    # personalization withdrawn: the profile is left out (spend unknown: gold_card not suitable)
    api.post("/v1/events", json=[ev("cz-c3", "consent", T0 + 120, cid, purpose="personalization",
                                    granted=False)])
    for _ in range(2):
        d = served(offers=None, limit=5)
        assert d["personalized"] is False and "gold_card" not in {o["offer_id"] for o in d["offers"]}
        assert all(any("not personalised" in r for r in o["reasons"]) for o in d["offers"])
        flow.drain()

    # a later withdrawal for every channel overrides the earlier record for e-mail
    api.post("/v1/events", json=[ev("cz-c4", "consent", T0 + 180, cid, purpose="marketing",
                                    granted=False),
                                 ev("cz-c5", "consent", T0 + 240, cid, purpose="personalization",
                                    granted=True)])
    flow.drain()
    d = served(offers=None, limit=5)
    assert d["personalized"] is True and all(o["kind"] != "offer" for o in d["offers"])
    profile = get_json(api, f"/v1/customers/{cid}")
    assert profile["consent"] == {"marketing": False, "personalization": True}


def test_a_visitors_consent_can_come_with_the_request(api, flow, settings) -> None:
    """Anonymous visitors cannot send consent events: the website passes its cookie banner's
    answer as `context.consent`; a customer's own record wins over it."""
    settings.control_share = 0.0
    api.post("/v1/events", json=[ev("v-click", "click", T0, None, anonymous_id="v1"),
                                 ev("w-c", "consent", T0, "withdrawn", purpose="marketing",
                                    granted=False)])
    flow.drain()
    body = {"anonymous_id": "v1", "channel": "web", "limit": 3}

    def kinds(**over: Any) -> set[str]:
        return {o["kind"] for o in api.post("/v1/decisions", json={**body, **over}).json()["offers"]}

    assert "offer" not in kinds()
    assert "offer" in kinds(context={"consent": {"marketing": True}})
    d = api.post("/v1/decisions", json={**body, "context": {"consent": {"personalization": False}}})
    assert d.json()["personalized"] is False
    assert "offer" not in kinds(customer_id="withdrawn", context={"consent": {"marketing": True}})
