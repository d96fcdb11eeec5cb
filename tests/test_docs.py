"""The docs are kept true: the feature reference is generated from the code, and the data guide's
converter gives events the engine takes."""

from pathlib import Path

from engine.featuredoc import render
from engine.features import CustomerState


def test_feature_doc_is_current() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert doc.read_text() == render(), "run: python -m engine.featuredoc > docs/features.md"


def test_every_feature_produced_is_documented() -> None:
    st = CustomerState("c")
    st.update({"event_id": "1", "type": "click", "ts": 1.0, "action": "product_view", "category": "home"})
    st.update({"event_id": "2", "type": "call", "ts": 2.0, "reason": "billing", "sentiment": 0.1})
    st.update({"event_id": "3", "type": "transaction", "ts": 3.0, "amount": 5.0,
               "items": [{"category": "home"}]})
    documented = {n.split("<")[0] for n in render().split("`")[1::2]}
    for name in st.features():
        assert name in documented or any(name.startswith(p) for p in documented if p.endswith("_")), name


def test_the_online_retail_converter_gives_events_the_engine_takes() -> None:
    """docs/examples/online_retail.py on lines as the UCI file has them: an invoice of two lines,
    a cancellation, a line without a customer (left out); every event validates."""
    import csv
    import io
    import runpy

    from engine.events import validate

    rows = io.StringIO(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
        "536365,71053,METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n"
        "536414,22139,TEA SET,56,2010-12-01 11:52:00,0.0,,United Kingdom\n")
    convert = runpy.run_path(str(Path(__file__).parents[1] / "docs/examples/online_retail.py"))
    got = [validate(e) for e in convert["events"](csv.DictReader(rows))]
    assert [(e["event_id"], e["customer_id"], e["kind"], e["amount"]) for e in got] == [
        ("536365", "17850", "purchase", 35.64), ("C536379", "14527", "refund", 27.5)]
    assert got[0]["ts"] == 1_291_191_960.0 and len(got[0]["items"]) == 2
