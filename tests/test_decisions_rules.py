"""Decisions governed by the catalog: each rule kind, catalog validation and hot reload, the
consent gate, consistency across channels, control hold-outs, and the agent desktop (answers
to decisions are in test_responses.py). Engine-level where the behaviour is pure; through the
real API and flow otherwise."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from engine.catalog import Catalog
from engine.decide import Profile, Request, candidates, decide
from engine.policy import Policy, record
from engine.rules import RuleError
from tests.conftest import KEY, ev, get_json, wait_for

T0 = 1_767_225_600.0  # 2026-01-01
DAY = 86400.0

CATALOG = """
offers:
  - {id: adults, value: 10, eligible: "attributes.age >= 18"}
  - {id: cards_page, value: 10, applicable: "context.page == 'cards'"}
  - {id: big_spender, value: 10, suitable: "features.total_spend >= 100"}
  - {id: january, value: 10, valid_from: 2026-01-01, valid_to: "2026-01-31T23:59:59+00:00"}
  - {id: phone_only, value: 10, channels: [call_center]}
  - {id: save_them, kind: retention, value: 10}
  - {id: fix_it, kind: service, value: 10}
"""


def catalog(tmp_path: Path, text: str = CATALOG) -> Catalog:
    path = tmp_path / "offers.yaml"
    path.write_text(text)
    return Catalog.load(path)


def kept(cat: Catalog, profile: Profile, request: Request, now: float) -> tuple[set[str], dict]:
    offers, rejected = candidates(cat, profile, request, now)
    return {o.id for o in offers}, rejected


def test_each_rule_kind_gates_its_offer(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    yes = Profile("c1", {"total_spend": 150.0}, {"age": 30}, {}, {"marketing": True}, True)
    ids, rejected = kept(cat, yes, Request("call_center", {"page": "cards"}), T0 + 5 * DAY)
    assert ids == {"adults", "cards_page", "big_spender", "january", "phone_only", "save_them",
                   "fix_it"} and rejected == {}
    no = Profile("c2", {"total_spend": 50.0}, {"age": 16}, {}, {"marketing": True}, True)
    ids, rejected = kept(cat, no, Request("web", {"page": "shoes"}), T0 + 40 * DAY)
    assert ids == {"save_them", "fix_it"}
    assert rejected == {"adults": "eligible condition false",
                        "cards_page": "applicable condition false",
                        "big_spender": "suitable condition false",
                        "january": "channel or validity", "phone_only": "channel or validity"}
    # validity dates: before, inside, after; a missing value fails closed
    for now, ok in ((T0 - 1, False), (T0, True), (T0 + 30 * DAY, True), (T0 + 31 * DAY, False)):
        assert ("january" in kept(cat, yes, Request("web"), now)[0]) is ok, now
    bare = Profile("c3", {}, {}, {}, {"marketing": True}, False)
    ids, _ = kept(cat, bare, Request("web", {"page": "cards"}), T0)
    assert "adults" not in ids and "big_spender" not in ids and "cards_page" in ids


@pytest.mark.parametrize(("text", "message"), [
    ("offers:\n  - {id: a, kind: coupon}\n", "offers.yaml: offer a: kind: Input should be"),
    ("offers:\n  - {id: a, value: -5}\n", "offers.yaml: offer a: value: Input should be greater"),
    ("offers:\n  - {id: a, control: 1.5}\n", "offers.yaml: offer a: control: Input should be"),
    ("offers:\n  - {id: a, valid_from: someday}\n", "offers.yaml: offer a: valid_from:"),
    ("offers:\n  - {id: a}\n  - {id: b, eligible: 'features.x >>> 1'}\n",
     "offers.yaml: b.eligible: 'features.x >>> 1' does not parse"),
    ("offers:\n  - {id: a, suitable: 'features.x >'}\n", "offers.yaml: a.suitable:"),
    ("offers:\n  - {id: a}\n  - {id: a}\n", "offers.yaml: duplicate offer ids ['a']"),
    ("offers:\n  - {title: no id}\n", "offers.yaml: offer #0: id: Field required"),
    ("offers: {a: 1}\n", "offers.yaml: needs a top-level list 'offers'"),
    ("offers: [\n", "offers.yaml: cannot read"),
])
def test_catalog_errors_name_the_file_offer_and_field(tmp_path: Path, text: str,
                                                      message: str) -> None:
    with pytest.raises(RuleError) as exc:
        catalog(tmp_path, text)
    assert str(exc.value).startswith(message), str(exc.value)


def test_numeric_offer_ids_and_categories_read_as_text(tmp_path: Path) -> None:
    """`id: 1001` (a SKU) and `category: 1338` (Retailrocket's category ids are numbers) were a
    catalog error; they read as the text events and decision requests give them as."""
    cat = catalog(tmp_path, "offers:\n  - {id: 1001, category: 1338}\n  - {id: b1}\n")
    assert [(o.id, o.category) for o in cat.offers] == [("1001", "1338"), ("b1", None)]
    with pytest.raises(RuleError, match="offer True: id: Input should be a valid string"):
        catalog(tmp_path, "offers:\n  - {id: yes}\n")  # YAML's true: no id


def test_consent_gate_leaves_only_service_and_retention(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    rng = random.Random(1)
    for consent in ({}, {"marketing": False}):
        p = Profile("c1", {"total_spend": 500.0}, {"age": 40}, {}, consent, True)
        d = decide(cat, {}, p, Request("call_center", {"page": "cards"}, limit=10), {}, T0, rng,
                   0.1, 0.0)
        assert {s.offer.id for s in d.ranked} == {"save_them", "fix_it"}
        assert all(d.rejected[o] == "no marketing consent"
                   for o in ("adults", "cards_page", "big_spender", "january", "phone_only"))
    p = Profile("c1", {"total_spend": 500.0}, {"age": 40}, {}, {"marketing": True}, True)
    d = decide(cat, {}, p, Request("call_center", {"page": "cards"}, limit=10), {}, T0, rng,
               0.1, 0.0)
    assert len(d.ranked) == 7


def test_control_hold_out_is_stable_and_never_served(tmp_path: Path) -> None:
    cat = catalog(tmp_path, "offers:\n  - {id: o, value: 10, control: 0.3}\n"
                            "  - {id: s, kind: service, value: 1}\n")
    rng = random.Random(2)
    held = {}
    for i in range(2000):
        p = Profile(f"c{i}", {}, {}, {}, {"marketing": True}, True)
        d = decide(cat, {}, p, Request("web", limit=5), {}, T0, rng, 0.1, 0.05)
        held[p.customer_id] = d.held_out == ["o"]
        assert ("o" in {s.offer.id for s in d.ranked}) is not held[p.customer_id]
        assert "s" in {s.offer.id for s in d.ranked}  # service actions are never held out
    assert 0.27 < sum(held.values()) / len(held) < 0.33  # the offer's own share wins
    for i in range(0, 2000, 7):  # asked again, by another process: the same answer
        p = Profile(f"c{i}", {}, {}, {}, {"marketing": True}, True)
        d = decide(cat, {}, p, Request("web", limit=5), {}, T0 + DAY, random.Random(i), 0.1, 0.05)
        assert (d.held_out == ["o"]) is held[f"c{i}"]


def test_consistency_pins_the_recent_lead_until_something_material_changes(tmp_path: Path) -> None:
    cat = catalog(tmp_path, "offers:\n" + "".join(
        f"  - {{id: o{i}, value: {10 + i}}}\n" for i in range(6)))
    p = Profile("c1", {}, {}, {}, {"marketing": True}, True)
    leads = {decide(cat, {}, p, Request("web"), {}, T0, random.Random(s), 0.1, 0.0).ranked[0]
             .offer.id for s in range(40)}
    assert len(leads) > 1  # exploration alone gives different answers
    policy = Policy()
    state = record({}, [("o2", "offer")], "web", T0) | {"lead": ["o2", T0, "web"]}
    for s in range(20):
        d = decide(cat, {}, p, Request("call_center"), {}, T0 + 600, random.Random(s), 0.1, 0.0,
                   lead=policy.lead(state, T0 + 600))
        assert d.ranked[0].offer.id == "o2" and d.probability == 1.0 and not d.explored
        assert any("consistency" in r for r in d.ranked[0].reasons)
    assert policy.lead(state, T0 + 31 * 60) is None  # the window has passed
    assert policy.lead(state | {"rej": {"o2": T0 + 60}}, T0 + 600) is None  # answered
    # no longer a candidate (here: restricted away by the request): not pinned
    d = decide(cat, {}, p, Request("web", offers=["o1", "o3"]), {}, T0 + 600, random.Random(1),
               0.1, 0.0, lead="o2")
    assert d.ranked[0].offer.id in {"o1", "o3"}
    # a full contact cap is a material change too: governance wins over consistency
    capped = Policy.parse({"caps": [{"name": "one", "window_days": 7, "max": 1}]})
    blocked = capped.blocked(state, [(o.id, o.kind) for o in cat.offers], "call_center", T0 + 600)
    d = decide(cat, {}, p, Request("call_center"), {}, T0 + 600, random.Random(1), 0.1, 0.0,
               blocked=blocked, lead=capped.lead(state, T0 + 600))
    assert d.ranked == [] and blocked["o2"] == "contact cap one: 1 in 7 days"


# --- through the API and the flow ---

def consenting(api, flow, customers: list[str], granted: bool = True) -> None:
    api.post("/v1/events", json=[ev(f"{c}-c", "consent", T0, c, purpose="marketing",
                                    granted=granted) for c in customers])
    flow.drain()


def test_consent_and_consistency_through_the_api(api, flow, settings) -> None:
    settings.control_share = 0.0
    customers = [f"cs{i}" for i in range(12)]
    api.post("/v1/events", json=[
        ev("nc1-call", "call", T0, "nc1", reason="complaint", outcome="unresolved", sentiment=-0.5),
        ev("nc1-c", "consent", T0, "nc1", purpose="marketing", granted=False)])
    consenting(api, flow, customers + ["cs-material"])
    # no marketing consent: only service and retention actions
    body = {"customer_id": "nc1", "channel": "call_center", "limit": 20}
    d = api.post("/v1/decisions", json=body).json()
    assert d["offers"] and {o["kind"] for o in d["offers"]} <= {"service", "retention"}
    api.post("/v1/events", json=[ev("nc1-c2", "consent", T0 + 60, "nc1", purpose="marketing",
                                    granted=True)])
    flow.drain()
    d = api.post("/v1/decisions", json={**body, "channel": "web"}).json()
    assert "offer" in {o["kind"] for o in d["offers"]}
    # the website, then the agent desktop moments later: the same leading offer
    wanted = ["city_break", "garden_sale", "kitchen_set", "running_club", "skincare_box"]
    for cid in customers:
        web = api.post("/v1/decisions", json={"customer_id": cid, "channel": "web",
                                              "offers": wanted}).json()["offers"][0]["offer_id"]
        agent = api.post("/v1/decisions", json={"customer_id": cid, "channel": "call_center",
                                                "offers": wanted}).json()
        assert agent["offers"][0]["offer_id"] == web
        assert any("consistency" in r for r in agent["offers"][0]["reasons"])
    # something material: the customer turns the offer down; the next answer moves on
    cid = "cs-material"
    d = api.post("/v1/decisions", json={"customer_id": cid, "channel": "web",
                                        "offers": wanted}).json()
    lead = d["offers"][0]["offer_id"]
    api.post(f"/v1/decisions/{d['decision_id']}/feedback", json={"offer_id": lead,
                                                                "outcome": "rejected"})
    again = api.post("/v1/decisions", json={"customer_id": cid, "channel": "call_center",
                                            "offers": wanted}).json()
    assert again["offers"][0]["offer_id"] != lead


def test_catalog_reloads_without_restart_and_keeps_the_last_good_one(settings,
                                                                      tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(settings.rules_dir, rules)
    settings.rules_dir = rules
    settings.models_poll_s = 0.5
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as api:
        path = rules / "offers.yaml"  # a service action: served without consent or history
        path.write_text(path.read_text() + "  - {id: flash_sale, kind: service, value: 5}\n")
        wait_for(lambda: "flash_sale" in {o["id"] for o in get_json(api, "/v1/offers")["offers"]},
                 timeout=15)
        d = api.post("/v1/decisions", json={"customer_id": "hr1", "channel": "web",
                                            "offers": ["flash_sale"]}).json()
        assert [o["offer_id"] for o in d["offers"]] == ["flash_sale"]
        time.sleep(0.05)  # a distinct modification time
        path.write_text(path.read_text() + "  - {id: broken, value: -1}\n")
        out = wait_for(lambda: (o := get_json(api, "/v1/offers"))["error"] and o, timeout=15)
        assert out["error"].startswith("offers.yaml: offer broken: value:")
        assert "flash_sale" in {o["id"] for o in out["offers"]}  # last good catalog kept
        status = get_json(api, "/v1/status")
        assert status["catalog_error"] == out["error"]
        assert status["alert_rules_error"] is None and status["policy_error"] is None
        # rules/alerts.yaml is the flow's (it keeps its last good rules); the status says why
        alerts = rules / "alerts.yaml"
        good = alerts.read_text()
        alerts.write_text(good + "  - {id: typo, when: 'true', cooldown_days: soon}\n")
        error = wait_for(lambda: get_json(api, "/v1/status")["alert_rules_error"], timeout=15)
        assert error.startswith("alerts.yaml: opportunity typo: cooldown_days:"), error
        time.sleep(0.05)
        alerts.write_text(good)
        wait_for(lambda: get_json(api, "/v1/status")["alert_rules_error"] is None, timeout=15)


def test_agent_desktop_puts_retention_first_when_churn_risk_is_high(api, flow, settings) -> None:
    settings.control_share = 0.0
    rng = random.Random(5)
    events = []
    for i in range(60):  # a churn model: complaining customers churn
        cid, churns = f"ch{i}", i % 3 == 0
        events += [ev(f"{cid}-call", "call", T0 + i, cid,
                      reason="complaint" if churns else "billing",
                      sentiment=round(rng.uniform(-1, -0.5) if churns else rng.uniform(0.2, 1), 2),
                      outcome="unresolved" if churns else "resolved"),
                   ev(f"{cid}-out", "outcome", T0 + 100 + i, cid, name="churned", value=churns)]
    events += [ev("agent1-c", "consent", T0, "agent1", purpose="marketing", granted=True),
               ev("agent1-p", "profile", T0, "agent1", owner="rep2"),
               ev("agent1-t", "transaction", T0 + 1, "agent1", amount=250.0),
               ev("agent1-call", "call", T0 + 300, "agent1", reason="complaint", sentiment=-0.9,
                  outcome="unresolved")]
    api.post("/v1/events", json=events)
    flow.drain()
    risk = wait_for(lambda: get_json(api, "/v1/customers/agent1")["scores"].get("churn_risk"),
                    timeout=15)
    settings.churn_threshold = risk - 0.01  # high risk for this customer, by definition
    nba = get_json(api, "/v1/customers/agent1/next-best-action", params={"limit": 10})
    kinds = [a["kind"] for a in nba["actions"]]
    assert "retention" in kinds and "offer" in kinds
    first_other = next(i for i, k in enumerate(kinds) if k != "retention")
    assert all(k != "retention" for k in kinds[first_other:])  # retention actions first
    assert [a["rank"] for a in nba["actions"]] == list(range(1, len(kinds) + 1))
    assert all(a["script"] and a["reasons"] for a in nba["actions"])
    s = nba["summary"]
    assert s["churn_risk"] == pytest.approx(risk, abs=0.05) and s["owner"] == "rep2"
    assert {"tier", "clv", "open_alerts", "last_interactions"} <= set(s)
    assert s["last_interactions"][0]["type"] == "call"


def test_a_customer_who_asks_to_cancel_gets_retention_first_and_their_owner_an_alert(
        api, flow, settings) -> None:
    """No churn model and no marketing consent (as with a call centre's own data): a cancel
    request alone puts retention first for the agent, says why offers are missing, and raises a
    churn_risk alert for the account owner (the shipped `rules/alerts.yaml`); a complaint
    offers loyalty but not the discount; 31 days on, the cancel request no longer leads."""
    settings.control_share = 0.0
    api.post("/v1/events", json=[
        ev("q-p", "profile", T0, "quitter", attributes={"owner": "rep9"}),
        ev("q-t", "transaction", T0 + 1, "quitter", amount=300.0),
        ev("q-c", "call", T0 + DAY, "quitter", reason="cancel_request", sentiment=-0.7,
           channel="call_center"),
        ev("m-c", "call", T0 + DAY, "moaner", reason="complaint", sentiment=-0.4)])
    flow.drain()
    nba = get_json(api, "/v1/customers/quitter/next-best-action", params={"limit": 5})
    ids = [a["offer_id"] for a in nba["actions"]]
    assert ids[:2] and {"loyalty_boost", "retention_discount"} <= set(ids)
    assert all(a["kind"] == "retention" for a in nba["actions"][:2])
    assert nba["summary"]["at_risk"] is True and nba["summary"]["churn_risk"] is None
    assert nba["excluded"]["no marketing consent"] >= 10 and nba["personalized"] is True
    alerts = wait_for(lambda: get_json(api, "/v1/alerts", params={"owner": "rep9",
                                                                  "type": "churn_risk"})["alerts"])
    assert [a["data"]["rule"] for a in alerts] == ["asked_to_cancel"]
    assert alerts[0]["severity"] == "high" and alerts[0]["ts"] == T0 + DAY
    moaner = [a["offer_id"] for a in get_json(api, "/v1/customers/moaner/next-best-action",
                                              params={"limit": 5})["actions"]]
    assert "loyalty_boost" in moaner and "retention_discount" not in moaner
    assert not get_json(api, "/v1/alerts", params={"customer_id": "moaner"})["alerts"]
    api.post("/v1/events", json=[ev("later", "click", T0 + 32 * DAY, "someone_else")])
    flow.drain()
    later = get_json(api, "/v1/customers/quitter/next-best-action", params={"limit": 5})
    assert later["summary"]["at_risk"] is False
    assert "retention_discount" not in [a["offer_id"] for a in later["actions"]]


@pytest.mark.parametrize("exploration", ["thompson", "epsilon"])
def test_an_offer_is_held_out_only_where_it_would_have_been_served(tmp_path: Path,
                                                                   exploration: str) -> None:
    """The control group of an offer was every eligible customer in it, compared with the
    customers the engine chose for it: an offer with no effect at all read as a significant
    uplift (organic buyers are who it targets). Now a customer is held out of an offer only
    where it would have been served: treated and control come from the same choice."""
    from engine.models import OnlineModel

    cat = catalog(tmp_path, "offers:\n  - {id: fans, value: 10, control: 0.5}\n"
                            "  - {id: all, value: 10, control: 0.5}\n")
    models = {"fans": OnlineModel("offer:fans"), "all": OnlineModel("offer:all")}
    rng = random.Random(3)
    for i in range(3000):  # `fans` is accepted by fans only, `all` by a fifth of anyone
        fan = i % 2
        models["fans"].learn_one({"fan": float(fan)}, bool(fan) and rng.random() < 0.6)
        models["all"].learn_one({"fan": float(fan)}, rng.random() < 0.2)
    held_by_fan: dict[int, int] = {0: 0, 1: 0}
    for i in range(600):
        fan = i % 2
        p = Profile(f"c{i}", {}, {}, {}, {"marketing": True}, True)
        d = decide(cat, models, p, Request("web"), {"fan": float(fan)}, T0, rng, 0.1, 0.0,
                   exploration=exploration)
        served = [s.offer.id for s in d.ranked]
        assert not set(served) & set(d.held_out)
        assert len(served) == 1 or sorted(d.held_out) == ["all", "fans"]  # in both groups
        if "fans" in d.held_out and "all" not in d.held_out:  # `all` served in its place
            held_by_fan[fan] += 1
            assert served == ["all"]
    # not-fans are held out of `fans` only when it would have been theirs: when explored, or
    # when held out of `all` too (`fans` next in line), as likely as being served it then
    assert held_by_fan[1] > 50 and held_by_fan[0] <= 15  # 1/4 of 300 fans: ~75
