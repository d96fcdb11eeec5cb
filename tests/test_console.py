"""The web console in a real browser (headless Chromium) against the real engine.

One engine (embedded Redis, the flow, uvicorn) and one browser serve the whole module; the
data is seeded once through the public API. Screenshots of each view go to test-artifacts/.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from config import Settings
from nextbest.engine import Engine
from nextbest.redis_server import free_port
from tests import browser
from tests.conftest import ev, wait_for

pytestmark = pytest.mark.timeout(1200)  # the first test may install Chromium

KEY = "console-admin-key-0001"
AGENT_KEY = "console-agent-key-0001"
T0 = 1_767_225_600.0
SHOWCASE = "c-1001"


def post_events(client: httpx.Client, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 500):
        res = client.post("/v1/events", json=events[i:i + 500])
        assert res.status_code == 202, res.text


def drain(client: httpx.Client, timeout: float = 90.0) -> None:
    wait_for(lambda: client.get("/v1/status").json()["pending"] == 0, timeout, every=0.1)


def churn_training() -> list[dict[str, Any]]:
    """Customers of rep1 whose calls tell who churns: the churn model learns and matures."""
    rng = random.Random(3)
    events = []
    for i in range(260):
        cid, churns = f"p{i}", i % 5 == 0
        events.append(ev(f"{cid}-o", "profile", T0, cid, owner="rep1"))
        for k in range(3 if churns else 1):
            events.append(ev(f"{cid}-call{k}", "call", T0 + 10 + k, cid,
                             reason="complaint" if churns else "billing",
                             sentiment=round(rng.uniform(-1, -0.5) if churns else rng.uniform(0, 1), 2),
                             outcome="unresolved" if churns else "resolved"))
        events.append(ev(f"{cid}-out", "outcome", T0 + 100, cid, name="churned", value=churns))
    return events


def showcase(cid: str = SHOWCASE, t: float = T0 + 3600) -> list[dict[str, Any]]:
    """A consenting customer with clicks, a call and purchases."""
    return [
        ev(f"{cid}-consent", "consent", t, cid, purpose="marketing", granted=True),
        ev(f"{cid}-consent-p", "consent", t, cid, purpose="personalization", granted=True),
        ev(f"{cid}-profile", "profile", t, cid, owner="rep7",
           attributes={"plan": "plus", "age": 41, "region": "north"}),
        ev(f"{cid}-buy1", "transaction", t + 60, cid, kind="purchase", amount=899.0,
           channel="web", items=[{"product_id": "laptop-15", "category": "electronics",
                                  "quantity": 1, "unit_price": 899.0}]),
        ev(f"{cid}-v1", "click", t + 7200, cid, action="product_view", category="electronics",
           product_id="headphones-x2", channel="web"),
        ev(f"{cid}-s1", "click", t + 7260, cid, action="search", query="noise cancelling",
           category="electronics", channel="web"),
        ev(f"{cid}-cart", "click", t + 7320, cid, action="add_to_cart", category="electronics",
           product_id="headphones-x2", channel="app"),
        ev(f"{cid}-call", "call", t + 9000, cid, direction="inbound", reason="billing",
           sentiment=0.4, outcome="resolved", duration_s=240, channel="call_center"),
        ev(f"{cid}-buy2", "transaction", t + 10800, cid, kind="purchase", amount=49.9,
           currency="USD", channel="store", items=[{"product_id": "case-1", "category": "electronics",
                                    "quantity": 1, "unit_price": 49.9}]),
    ]


def offer_traffic(client: httpx.Client, n: int, rng: random.Random) -> None:
    """Decisions for consenting shoppers, answered: offer performance has something to show."""
    for i in range(n):
        cid = f"m{i % 30}"
        d = client.post("/v1/decisions", json={"customer_id": cid, "channel": "web"}).json()
        for o in d["offers"]:
            answer = {"offer_id": o["offer_id"], "outcome": "rejected"}
            if rng.random() < 0.35:
                answer.update(outcome="accepted", value=o["value"])
            client.post(f"/v1/decisions/{d['decision_id']}/feedback", json=answer)


def shoppers() -> list[dict[str, Any]]:
    events = []
    cats = ["electronics", "fashion", "home", "sports"]
    for i in range(30):
        cid = f"m{i}"
        events.append(ev(f"{cid}-c", "consent", T0, cid, purpose="marketing", granted=True))
        events.append(ev(f"{cid}-o", "profile", T0, cid, owner="rep7"))
        events += [ev(f"{cid}-v{k}", "click", T0 + 20 + k, cid, action="product_view",
                      category=cats[(i + k) % 4]) for k in range(3)]
    return events


def raise_churn_alert(client: httpx.Client, cid: str, owner: str, t: float,
                      spend: float = 0.0) -> dict[str, Any]:
    """Make a customer unhappy until the learned churn model flags them; the alert."""
    events = [ev(f"{cid}-o", "profile", t, cid, owner=owner)]
    if spend:
        events.append(ev(f"{cid}-buy", "transaction", t + 1, cid, kind="purchase", amount=spend))
    events += [ev(f"{cid}-call{k}", "call", t + 10 + k, cid, reason="complaint", sentiment=-0.9,
                  outcome="unresolved") for k in range(4)]

    def alerted() -> list[dict[str, Any]]:
        post_events(client, events)  # duplicates change nothing; each round adds a worse call
        events.append(ev(f"{cid}-call{len(events)}", "call", t + 100 + len(events), cid,
                         reason="complaint", sentiment=-0.95, outcome="escalated"))
        found = client.get("/v1/alerts", params={"customer_id": cid, "type": "churn_risk"}).json()["alerts"]
        return found

    return wait_for(alerted, timeout=60, every=0.5)[0]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data = tmp_path_factory.mktemp("console")
    settings = Settings(redis_url=None, data_dir=data, api_port=free_port(), partitions=2,
                        api_keys={KEY: ["admin", "ingest", "decide", "agent", "sales"],
                                  AGENT_KEY: ["agent", "decide"]},
                        model_publish_every=1, flow_recovery=False, model_secret="test-secret",
                        exchange_rates={"USD": 0.5})
    with Engine(settings) as e:
        with httpx.Client(base_url=e.api_url, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}"}) as client:
            post_events(client, churn_training() + shoppers() + showcase())
            drain(client)
            offer_traffic(client, 40, random.Random(5))
            drain(client)
        yield e


@pytest.fixture(scope="module")
def client(engine: Engine) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.api_url, timeout=10,
                      headers={"Authorization": f"Bearer {KEY}"}) as c:
        yield c


@pytest.fixture(scope="module")
def driver(engine: Engine) -> Iterator[Any]:
    browser.ensure_chromium()
    d = browser.chrome()
    yield d
    browser.close(d)


# --- the browser side ----------------------------------------------------------------------

def wait(driver: Any, check: Any, timeout: float = 20.0) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException)).until(check)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def css_all(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_view(driver: Any, engine: Engine, view: str, key: str = KEY) -> None:
    """Load the console at `#/view` with `key` already in the tab's session."""
    browser.console_errors(driver)  # drop what earlier pages logged
    driver.get(f"{engine.api_url}/console#/{view}")
    driver.execute_script("sessionStorage.setItem('nextbest.key', arguments[0])", key)
    driver.refresh()
    wait(driver, lambda d: css(d, "#tabs").is_displayed())


def page_errors(driver: Any) -> list[str]:
    """Script errors and failed loads in the page's console, past the expected refusals."""
    return [m for m in browser.console_errors(driver)
            if "status of 401" not in m and "status of 403" not in m]


def test_sign_in_keeps_the_key_in_the_tab_and_out_of_urls(driver, engine):
    driver.get(f"{engine.api_url}/console")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    form = wait(driver, lambda d: css(d, "#signin-form"))
    assert form.is_displayed() and not css(driver, "#tabs").is_displayed()
    browser.screenshot(driver, "console-signin")
    css(driver, "#api-key").send_keys("not-a-key")
    css(driver, "#signin-submit").click()
    error = wait(driver, lambda d: css(d, "#signin-error").is_displayed() and css(d, "#signin-error"))
    assert "not known" in error.text
    css(driver, "#api-key").send_keys(KEY)
    css(driver, "#signin-submit").click()
    wait(driver, lambda d: css(d, "#tabs").is_displayed())
    assert "admin" in css(driver, "#key-id").text and KEY not in css(driver, "#key-id").text
    assert driver.execute_script("return sessionStorage.getItem('nextbest.key')") == KEY
    assert driver.execute_script("return JSON.stringify(localStorage) + document.cookie") == "{}"
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href])")
    assert urls and not [u for u in urls if KEY in u]
    css(driver, "#sign-out").click()
    wait(driver, lambda d: css(d, "#signin-form").is_displayed())
    assert driver.execute_script("return sessionStorage.getItem('nextbest.key')") is None
    browser.console_errors(driver)  # the refused key's 401 is expected here


def test_agent_view_shows_the_customer_and_accepting_moves_the_count(driver, engine, client):
    open_view(driver, engine, f"agent/{SHOWCASE}")
    summary = wait(driver, lambda d: css(d, "#customer-summary"))
    assert SHOWCASE in summary.text and "rep7" in summary.text
    assert "Marketing: granted" in css(driver, "#consent").text
    assert "923.95" in summary.text  # total spend: 899 EUR and 49.90 USD at 0.5
    kinds = {e.get_attribute("class") for e in css_all(driver, "#timeline li.tl")}
    assert "Purchase · 24.95 EUR (49.90 USD)" in css(driver, "#timeline").text
    assert {"tl tl-click", "tl tl-call", "tl tl-transaction"} <= kinds
    actions = wait(driver, lambda d: css_all(d, "#actions li.action"))
    first = actions[0]
    offer = first.get_attribute("data-offer")
    assert first.find_element("css selector", ".script").text
    assert first.find_element("css selector", ".reasons li").text

    def count(_: Any) -> str:
        return str(first.find_element("css selector", ".accepted-count").text)

    before = int(wait(driver, lambda d: count(d).isdigit() and count(d)))
    api_before = client.get(f"/v1/offers/{offer}/performance").json()["accepted"]
    assert before == api_before

    first.find_element("css selector", "button.accept").click()
    status = wait(driver, lambda d: first.find_element("css selector", ".action-status"))
    assert "Accepted" in status.text
    wait(driver, lambda d: count(d) == str(before + 1), timeout=30)
    assert client.get(f"/v1/offers/{offer}/performance").json()["accepted"] == before + 1
    browser.screenshot(driver, "console-agent")
    assert page_errors(driver) == []


def test_agent_view_puts_retention_first_for_a_customer_asking_to_cancel(driver, engine, client):
    """No consent record and no churn model needed: a cancel request puts the agent's retention
    actions first, says so, and says why no marketing offer is there."""
    post_events(client, [ev("quit-p", "profile", T0, "quitter", owner="rep3"),
                         ev("quit-c", "call", T0 + 50, "quitter", reason="cancel_request",
                            sentiment=-0.6)])
    drain(client)
    open_view(driver, engine, "agent/quitter")
    actions = wait(driver, lambda d: css_all(d, "#actions li.action"))
    assert "retention actions first" in css(driver, "#at-risk").text
    assert actions[0].get_attribute("class") == "action kind-retention"
    assert "no marketing consent" in css(driver, "#excluded").text
    assert page_errors(driver) == []


def test_agent_view_says_when_the_customer_is_unknown(driver, engine):
    open_view(driver, engine, "agent/nobody-here")
    assert "No customer" in wait(driver, lambda d: css(d, "#agent-error")).text


def test_sales_inbox_receives_live_alerts_most_severe_first_and_acks(driver, engine, client):
    open_view(driver, engine, "sales/rep9")
    wait(driver, lambda d: "live" in css(d, "#live-state").get_attribute("class"))
    assert css_all(driver, "#inbox li.alert") == []
    driver.execute_script("window.__sameDocument = true")
    low = raise_churn_alert(client, "c-3001", "rep9", T0 + 8000, spend=0.0)
    high = raise_churn_alert(client, "c-3002", "rep9", T0 + 8100, spend=5000.0)
    order = ["low", "medium", "high", "critical"]
    assert order.index(high["severity"]) > order.index(low["severity"])  # value weighs severity
    # other alerts about these customers (a big spender is also an up-sell opportunity) may
    # arrive too; the two churn alerts must, most severe first
    def ids(d: Any) -> list[str]:
        return [r.get_attribute("data-alert-id") for r in css_all(d, "#inbox li.alert")]

    wait(driver, lambda d: {high["alert_id"], low["alert_id"]} <= set(ids(d)), timeout=30)
    assert driver.execute_script("return window.__sameDocument") is True  # no reload
    order = ids(driver)
    assert order.index(high["alert_id"]) < order.index(low["alert_id"])
    rows = css_all(driver, "#inbox li.alert")
    top = rows[order.index(high["alert_id"])]
    assert "customer value 5000.00" in top.text and "new" in top.get_attribute("class")
    assert int(css(driver, f"#sev-counts .sev-{high['severity']}").get_attribute("data-count")) >= 1
    browser.screenshot(driver, "console-sales")

    top.find_element("css selector", "button.ack").click()
    wait(driver, lambda d: high["alert_id"] not in ids(d) and low["alert_id"] in ids(d))
    acked = client.get("/v1/alerts", params={"customer_id": "c-3002", "type": "churn_risk"}).json()["alerts"]
    assert acked[0]["status"] == "acked"
    assert page_errors(driver) == []


def test_marketing_view_samples_offers_models_and_engine(driver, engine, client):
    from selenium.webdriver.support.ui import Select

    open_view(driver, engine, "marketing")
    Select(wait(driver, lambda d: css(d, "#sample-every"))).select_by_value("2000")
    wait(driver, lambda d: css_all(d, "#offers-table tbody tr"))
    offer_traffic(client, 15, random.Random(9))  # traffic between two samples
    drain(client)
    perf = client.get("/v1/offers/laptop_bundle/performance").json()

    def shows_accepted(d: Any) -> bool:
        cell = css(d, '#offers-table tr[data-offer="laptop_bundle"] td.accepted')
        return cell.text == str(perf["accepted"])

    wait(driver, shows_accepted, timeout=20)
    churn = wait(driver, lambda d: css(d, '#models-table tr[data-model="outcome:churned"]'))
    assert churn.find_element("css selector", "td.auc").text not in ("", "—")
    assert churn.find_element("css selector", "td.drift").text in ("stable",) or "drift" in \
        churn.find_element("css selector", "td.drift").text
    wait(driver, lambda d: css(d, "#stat-decisions-rate .tile-value").text not in ("—", "0.0/s"))
    wait(driver, lambda d: css(d, "#stat-p99 .tile-value").text.endswith("ms"))
    for chart in ("#offer-chart", "#auc-chart", "#throughput-chart", "#latency-chart"):
        wait(driver, lambda d, c=chart: css_all(d, f"{c} path.line"))
    assert css(driver, "#stat-customers .tile-value").text.replace(",", "").isdigit()
    time.sleep(2.5)  # one more sample, so the lines have a few points
    browser.screenshot(driver, "console-marketing")
    assert page_errors(driver) == []


def test_views_follow_the_roles_of_the_key(driver, engine):
    open_view(driver, engine, "sales", key=AGENT_KEY)
    assert "lacks the 'sales' role" in wait(driver, lambda d: css(d, "#view-sales .notice")).text
    css(driver, '#tabs a[data-view="marketing"]').click()
    wait(driver, lambda d: css_all(d, "#offers-table tbody tr"))
    notice = wait(driver, lambda d: css(d, "#models .notice"))
    assert "admin" in notice.text
    browser.console_errors(driver)  # the refused admin endpoints are expected here
