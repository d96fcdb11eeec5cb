"""Model inputs: features, profile attributes and request context as one flat vector.

Numbers stay numbers (River scales them online); booleans become 0/1; strings become one-hot
indicators of a *hashed* value (`name#bucket`), so the raw text of an attribute (an e-mail
address, a name) never becomes a key of a model's weights: models hold no personal data and
erasure need not touch them.

>>> vectorize({"clicks": 3}, {"plan": "gold", "age": 41, "vip": True}, {"channel": "web"})
{'clicks': 3.0, 'attr_plan#337': 1.0, 'attr_age': 41.0, 'attr_vip': 1.0, 'ctx_channel#81': 1.0}
"""

from __future__ import annotations

import zlib
from typing import Any

from engine.types import Vector

_SKIP_FEATURES = ("days_since_",)
BUCKETS = 1024  # hashed buckets per string attribute


def _put(out: Vector, name: str, value: Any) -> None:
    if isinstance(value, bool):
        out[name] = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        out[name] = float(value)
    elif isinstance(value, str):
        out[f"{name}#{zlib.crc32(value.encode()) % BUCKETS}"] = 1.0


def vectorize(
    features: dict[str, Any], attributes: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> Vector:
    out: Vector = {}
    for name, value in features.items():  # the flow vectorises ~100 features per batch
        kind = type(value)
        if kind is float or kind is int:  # most of them: inlined `_put`
            if value != -1.0 or not name.startswith(_SKIP_FEATURES):
                out[name] = float(value)
        elif not (name.startswith(_SKIP_FEATURES) and value == -1.0):
            _put(out, name, value)
    for name, value in (attributes or {}).items():
        _put(out, "attr_" + name, value)
    for name, value in (context or {}).items():
        _put(out, "ctx_" + name, value)
    return out
