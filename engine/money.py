"""Amounts in one currency: the engine's (`NEXTBEST_CURRENCY`). A transaction sent in another is
converted at `NEXTBEST_EXCHANGE_RATES` (units of the engine's currency per unit of the other)
before it reaches any feature, so spend, order values and lifetime value add up in one unit.
A currency with no rate is taken as it is, and counted (`GET /v1/status`,
`unconverted_currencies`): summing dollars with euros silently is what the count is there to
show; dead-lettering a shop's every sale for a missing setting would lose more.

>>> eur = Currencies("EUR", {"USD": 0.9})
>>> eur.in_base({"type": "transaction", "amount": 100.0, "currency": "USD"})
({'type': 'transaction', 'amount': 90.0, 'currency': 'EUR', 'sent_amount': 100.0, 'sent_currency': 'USD'}, None)
>>> eur.in_base({"type": "transaction", "amount": 100.0, "currency": "GBP"})[1]
'GBP'
>>> eur.in_base({"type": "transaction", "amount": 100.0})[0]["amount"]  # the engine's own
100.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Currencies:
    base: str = "EUR"
    rates: Mapping[str, float] = field(default_factory=dict)  # base units per unit of each

    def in_base(self, ev: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The transaction with its amount in the engine's currency (what was sent kept beside
        it), and the currency it was left in for want of a rate, if any."""
        code = ev.get("currency")
        if code is None or code == self.base:
            return ev, None
        rate = self.rates.get(code)
        if rate is None:
            return ev, code
        return {**ev, "amount": round(ev["amount"] * rate, 4), "currency": self.base,
                "sent_amount": ev["amount"], "sent_currency": code}, None
