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

import re
from typing import Any

import orjson
import zen


class RuleError(ValueError):
    """A rule that cannot be used; the message names the file, the item and the field."""


def given(doc: dict[str, Any]) -> dict[str, Any]:
    """A rules file's keys that have a value: one left empty in YAML (`caps:`) takes its
    default when validated.

    >>> given({"caps": None, "consistency_minutes": 10})
    {'consistency_minutes': 10}
    """
    return {k: v for k, v in doc.items() if v is not None}


def first_error(exc: Any, whole: str) -> str:
    """A pydantic `ValidationError`'s first error as "field: message" (`whole` when it is
    about the item itself), for a `RuleError` naming the file and the item.

    >>> from pydantic import BaseModel, ValidationError
    >>> class Cap(BaseModel):
    ...     max: int
    >>> try:
    ...     Cap.model_validate({"max": "many"})
    ... except ValidationError as exc:
    ...     print(first_error(exc, "cap"))
    max: Input should be a valid integer, unable to parse string as an integer
    """
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}"


def _zen_message(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    try:
        return str(orjson.loads(text).get("source", text))
    except orjson.JSONDecodeError:
        return text


_REF = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?")


def references(source: str) -> dict[str, set[str]] | None:
    """Top-level names and their first-level keys an expression reads; None if unsure.

    zen converts its whole input on every evaluation, so handing it only what the expression
    reads makes evaluation ~10x cheaper with a 100-feature profile.

    >>> references("features.x > 1 and (scores.churn ?? 0) > context.min")
    {'features': {'x'}, 'scores': {'churn'}, 'context': {'min'}}
    """
    refs: dict[str, set[str]] = {}
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", source)  # string literals are not references
    for root, key in _REF.findall(text):
        if root in ("and", "or", "not", "true", "false", "null", "in"):
            continue
        if not key:
            if re.search(rf"\b{root}\s*\(", text):
                continue  # a function call, e.g. len(...)
            return None  # a whole object is read: hand over everything
        refs.setdefault(root, set()).add(key)
    return refs


def _slice(refs: dict[str, set[str]] | None, data: dict[str, Any]) -> dict[str, Any]:
    """What of `data` expressions reading `refs` can see (`references`); all of it for None."""
    if refs is None:
        return data
    out: dict[str, Any] = {}
    for root, keys in refs.items():
        part = data.get(root)
        if isinstance(part, dict):
            out[root] = {k: part[k] for k in keys if k in part}
        elif part is not None:
            out[root] = part
    return out


class Condition:
    """A compiled boolean expression over a dict of data."""

    __slots__ = ("_compiled", "_refs", "source", "where")

    def __init__(self, source: str, where: str, compiled: Any) -> None:
        self.source, self.where, self._compiled = source, where, compiled
        self._refs = references(source)

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
            return self._compiled.evaluate(_slice(self._refs, data)) is True
        except Exception:  # noqa: BLE001 - zen raises plain Exception for values it cannot take
            return False

    def value(self, data: dict[str, Any]) -> Any:
        try:
            return self._compiled.evaluate(_slice(self._refs, data))
        except Exception:  # noqa: BLE001
            return None


class Conditions:
    """Several conditions tested in one evaluation of one list expression: zen converts its
    input on every call, and that conversion was most of a call's cost (~1.1 us each for one
    condition, ~1.8 us for a list of four, measured with timeit). If the list fails (one
    condition meets a value it cannot take), each is tested on its own, so one broken rule
    cannot change the others' answers.

    A condition none of whose values is there (absent or null) has one answer for the shape of
    its input, kept after the first time: zen fails on such a comparison (`features.x >= 100`
    with no `x`), and its failure took ~45 us against ~2 us for a list that holds, so a customer
    without some feature made the whole list and then each failing condition pay it (~90 us of
    a decision with the shipped catalog for a customer who never called, ~160 us for one with no
    features). Once a pattern of absent values has failed the list, those conditions get their
    kept answers and the others are tested in one list; a pattern the list takes (`??`) stays
    in it.

    >>> both = Conditions([Condition.compile("features.x > 1", "a"),
    ...                    Condition.compile("features.x > 'a'", "b")])
    >>> both.test({"features": {"x": 2}})   # the second cannot compare: false, the first holds
    [True, False]
    >>> both.test({"features": {}})         # no x: both false, and zen not asked again
    [False, False]
    """

    __slots__ = ("_answers", "_compiled", "_each", "_failing", "_refs", "_subsets", "conditions")

    def __init__(self, conditions: list[Condition]) -> None:
        self.conditions = conditions
        self._compiled: Any = None
        try:  # one condition too: its list goes around absent values like any other
            self._compiled = zen.compile_expression(
                "[" + ", ".join(f"({c.source})" for c in conditions) + "]")
        except RuntimeError:
            pass  # each compiled alone; tested one by one
        refs: dict[str, set[str]] | None = {}
        for c in conditions:
            if c._refs is None or refs is None:
                refs = None
                continue
            for root, keys in c._refs.items():
                refs.setdefault(root, set()).update(keys)
        self._refs = refs
        # each condition's values as (root, key) pairs; none for one that reads a whole object
        self._each = [tuple((r, k) for r, keys in c._refs.items() for k in sorted(keys))
                      if c._refs else () for c in conditions]
        self._answers: dict[tuple[int, tuple[str, ...]], bool] = {}
        self._subsets: dict[tuple[int, ...], Conditions] = {}
        self._failing: set[tuple[int, ...]] = set()  # patterns of absent values the list fails

    def test(self, data: dict[str, Any]) -> list[bool]:
        """`Condition.test` of each, in order."""
        # looked for only once some pattern has failed the list: the alert rules (all `??`) never do
        absent = self._absent(data) if self._failing else None
        if absent is not None and absent in self._failing:
            return self._around(absent, data)
        if self._compiled is not None:
            try:
                values = self._compiled.evaluate(_slice(self._refs, data))
                if isinstance(values, list) and len(values) == len(self.conditions):
                    return [v is True for v in values]
            except Exception:  # noqa: BLE001 - as in Condition.test
                pass
            absent = self._absent(data) if absent is None else absent
            if absent:  # this pattern of absent values fails the list: go around it next time
                if len(self._failing) >= 256:
                    self._failing.clear()
                self._failing.add(absent)
                return self._around(absent, data)
        return [c.test(data) for c in self.conditions]

    def _absent(self, data: dict[str, Any]) -> tuple[int, ...]:
        """The conditions none of whose values `data` holds (absent or null)."""
        out: list[int] = []
        for i, pairs in enumerate(self._each):
            for root, key in pairs:
                part = data.get(root)
                if part is not None and not (isinstance(part, dict) and part.get(key) is None):
                    break
            else:
                if pairs:
                    out.append(i)
        return tuple(out)

    def _around(self, absent: tuple[int, ...], data: dict[str, Any]) -> list[bool]:
        out = [False] * len(self.conditions)
        for i in absent:  # the answer depends only on which of its roots are objects
            shape = tuple(sorted({r for r, _ in self._each[i] if isinstance(data.get(r), dict)}))
            answer = self._answers.get((i, shape))
            if answer is None:
                answer = self._answers[(i, shape)] = self.conditions[i].test({r: {} for r in shape})
            out[i] = answer
        live = tuple(i for i in range(len(self.conditions)) if i not in absent)
        if live:
            sub = self._subsets.get(live)
            if sub is None:
                if len(self._subsets) >= 64:  # bounded: patterns of absent values are few
                    self._subsets.clear()
                sub = self._subsets[live] = Conditions([self.conditions[i] for i in live])
            for i, holds in zip(live, sub.test(data)):
                out[i] = holds
        return out
