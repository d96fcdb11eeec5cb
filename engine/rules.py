"""Conditions written by the business, compiled once by zen-engine's expression language.

>>> c = Condition.compile("features.clicks > 2 and context.page == 'cards'", where="x.eligible")
>>> c.test({"features": {"clicks": 3}, "context": {"page": "cards"}})
True
>>> c.test({"features": {}, "context": {}})   # missing values fail closed
False
>>> Condition.compile("clicks >>> 2", where="offers.yaml: gold.eligible")
Traceback (most recent call last):
...
engine.rules.RuleError: offers.yaml: gold.eligible: 'clicks >>> 2' does not parse: Unexpected token: Operator at (9, 10); Expected UnaryOperator.
"""

from __future__ import annotations

from typing import Any

import orjson
import zen


class RuleError(ValueError):
    """A rule that cannot be used; the message names the file, the item and the field."""


def _zen_message(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    try:
        return str(orjson.loads(text).get("source", text))
    except orjson.JSONDecodeError:
        return text


class Condition:
    """A compiled boolean expression over a dict of data."""

    __slots__ = ("source", "where", "_compiled")

    def __init__(self, source: str, where: str, compiled: Any) -> None:
        self.source, self.where, self._compiled = source, where, compiled

    @classmethod
    def compile(cls, source: str, where: str) -> Condition:
        problem = zen.validate_expression(source)
        if problem:
            raise RuleError(f"{where}: {source!r} does not parse: {problem.get('source', problem)}")
        try:
            compiled = zen.compile_expression(source)
        except RuntimeError as exc:
            raise RuleError(f"{where}: {source!r} does not compile: {_zen_message(exc)}") from None
        return cls(source, where, compiled)

    def test(self, data: dict[str, Any]) -> bool:
        """True only when the expression evaluates to true; errors and missing values are false."""
        try:
            return self._compiled.evaluate(data) is True
        except Exception:  # noqa: BLE001 - zen raises plain Exception for values it cannot take
            return False

    def value(self, data: dict[str, Any]) -> Any:
        try:
            return self._compiled.evaluate(data)
        except Exception:  # noqa: BLE001
            return None
