"""Online Retail (UCI, https://archive.ics.uci.edu/dataset/352) as nextbest events: one
transaction per invoice, cancellations (invoice numbers starting with C) as refunds.

    python docs/examples/online_retail.py OnlineRetail.csv > events.jsonl
    ./nb replay events.jsonl

Export the spreadsheet to CSV first (its columns: InvoiceNo, StockCode, Description, Quantity,
InvoiceDate as YYYY-MM-DD HH:MM:SS, UnitPrice, CustomerID, Country).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any


def events(rows: Iterator[dict[str, str]]) -> Iterator[dict[str, Any]]:
    invoices: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["CustomerID"]:  # a row without a customer cannot be attributed to anyone
            invoices[row["InvoiceNo"]].append(row)
    for number, lines in invoices.items():
        items = [{"product_id": r["StockCode"], "quantity": abs(float(r["Quantity"])),
                  "unit_price": float(r["UnitPrice"])} for r in lines]
        first = lines[0]
        yield {
            "event_id": number, "type": "transaction",
            # pandas writes the column's ids as 17850.0 when it has gaps; a text id is taken as
            # it is, so the same customer from another source must read "17850" too
            "customer_id": first["CustomerID"].removesuffix(".0"),
            "ts": first["InvoiceDate"] + "Z",  # UK time, which is UTC in the winter months
            "kind": "refund" if number.startswith("C") else "purchase",
            "amount": round(sum(i["quantity"] * i["unit_price"] for i in items), 2),
            "currency": "GBP", "items": items,
        }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8", newline="") as fh:
        for ev in events(csv.DictReader(fh)):
            print(json.dumps(ev))
