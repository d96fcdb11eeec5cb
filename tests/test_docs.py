"""The feature reference is generated from the code and kept current."""

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
