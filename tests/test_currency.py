"""Amounts in one currency (engine/money.py): a transaction sent in another is converted at
`NEXTBEST_EXCHANGE_RATES` before any feature sees it; one in a currency with no rate is taken as
it is and counted where an admin looks (`GET /v1/status`, `/metrics`)."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from config import Settings
from engine.customer import Context, process_batch
from engine.money import Currencies
from tests.conftest import ev, get_json

T0 = 1_767_225_600.0


def test_spend_adds_up_in_the_engines_currency():
    ctx = Context(currencies=Currencies("EUR", {"USD": 0.9}))
    c, out = process_batch(None, [
        ev("t1", "transaction", T0, "c1", amount=100.0, currency="USD"),
        ev("t2", "transaction", T0 + 60, "c1", amount=50.0, currency="EUR"),
        ev("t3", "transaction", T0 + 120, "c1", amount=10.0)], ctx)  # the engine's by default
    assert c.state.features()["total_spend"] == pytest.approx(150.0)  # 90 + 50 + 10
    assert not [o for o in out if o[0] == "unconverted"]
    shown = orjson.loads(orjson.dumps(c.state.interactions()))
    assert {"amount": 90.0, "currency": "EUR", "sent_amount": 100.0, "sent_currency": "USD"}.items() \
        <= next(i for i in shown if i.get("sent_currency")).items()


def test_a_currency_without_a_rate_is_taken_as_it_is_and_counted():
    ctx = Context(currencies=Currencies("EUR", {"USD": 0.9}))
    c, out = process_batch(None, [ev("t1", "transaction", T0, "c1", amount=100.0, currency="GBP")], ctx)
    assert c.state.features()["total_spend"] == 100.0
    assert ("unconverted", "GBP") in out


def test_an_exchange_rate_setting_is_checked():
    assert Settings(exchange_rates={"usd": 0.92}, currency="gbp").exchange_rates == {"USD": 0.92}
    assert Settings(currency="gbp").currency == "GBP"
    for bad, said in (({"US$": 1.0}, "not an ISO 4217 code"), ({"USD": 0.0}, "not a positive number")):
        with pytest.raises(ValidationError, match=said):
            Settings(exchange_rates=bad)
    with pytest.raises(ValidationError):
        Settings(currency="euro")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.currency, settings.exchange_rates = "EUR", {"USD": 0.9}
    return settings


def test_through_the_api_and_the_flow(settings, api, flow):
    """The rates reach the flow process through its environment; the admin sees what was left
    unconverted, by currency."""
    res = api.post("/v1/events", json=[
        ev("a1", "transaction", T0, "buyer", amount=200.0, currency="USD"),
        ev("a2", "transaction", T0 + 1, "buyer", amount=30.0, currency="GBP"),
        ev("a3", "transaction", T0 + 2, "other", amount=5.0, currency="GBP")])
    assert res.json()["accepted"] == 3
    flow.drain()
    assert get_json(api, "/v1/customers/buyer")["features"]["total_spend"] == pytest.approx(210.0)
    status = get_json(api, "/v1/status")
    assert status["currency"] == "EUR" and status["unconverted_currencies"] == {"GBP": 2}
    assert 'nextbest_unconverted_transactions_total{currency="GBP"} 2.0' in api.get("/metrics").text
