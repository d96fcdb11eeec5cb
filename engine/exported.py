"""What tables exported to JSON send, read as the contract means it: ids as numbers, currencies
in lower case, choices in another case or spelling, durations as H:MM:SS; and, for what cannot be
read, a reason that says what to send instead.

Only the first two run on every event (in pydantic's core, or as one pass over the event's
floats); the rest run only for an event that failed validation, which is then validated again
as meant (`as_meant`), so an event sent as the contract says pays nothing for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BeforeValidator

_HMS = re.compile(r"^\s*(\d+):([0-5]\d):([0-5]\d)(\.\d+)?\s*$")

# what a table's export usually means by a value the contract refuses: (field, error type)
HINTS = {
    ("amount", "greater_than_equal"): ' (a refund or a cancelled order is kind "refund" with a '
                                      "positive amount)",
    ("quantity", "greater_than_equal"): ' (returned items go in a kind "refund" transaction, '
                                        "with positive quantities)",
    **dict.fromkeys([("sentiment", "less_than_equal"), ("sentiment", "greater_than_equal")],
                    " (sentiment is in [-1, 1]: a 1-5 rating is (rating - 3) / 2)"),
}


def as_text(value: Any) -> Any:
    """A number where text is expected, as its decimal text: ids exported from tables are often
    numbers (Retailrocket's visitor and item ids; Online Retail's customer ids, which pandas
    writes as 17850.0 when a column has gaps: a whole number reads as its digits, "17850").

    >>> as_text(17850), as_text(17850.0), as_text(2.5), as_text(True), as_text("a")
    ('17850', '17850', '2.5', True, 'a')
    """
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else str(value)
    return value


def whole_floats_as_text(obj: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """`obj`, or a copy with the whole floats of its text `fields` (and its items') as digits."""
    floats = {k: as_text(v) for k, v in obj.items() if type(v) is float and k in fields}
    items = obj.get("items")
    if type(items) is list and any(type(v) is float and k in fields
                                   for i in items if type(i) is dict for k, v in i.items()):
        floats["items"] = [{k: as_text(v) if k in fields else v for k, v in i.items()}
                           if type(i) is dict else i for i in items]
    return {**obj, **floats} if floats else obj


def as_word(value: Any) -> Any:
    """A choice as a table or a form writes it, in the contract's spelling: lower case, words
    joined by underscores ("Resolved", "Add to cart", "page-view"); anything else as it is.

    >>> as_word("Add to cart"), as_word(" Inbound "), as_word(3)
    ('add_to_cart', 'inbound', 3)
    """
    return re.sub(r"[\s-]+", "_", value.strip().lower()) if isinstance(value, str) else value


def to_currency(value: Any) -> Any:
    """An ISO 4217 code in capitals, as tables write them in either case (Stripe's are lower).

    >>> to_currency("usd"), to_currency("EUR")
    ('USD', 'EUR')
    """
    code = value.strip() if isinstance(value, str) else value
    if isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha():
        return code.upper()
    if isinstance(value, str):
        raise ValueError(f"{value[:40]!r} is not an ISO 4217 code such as EUR or USD")
    return value


Currency = Annotated[str, BeforeValidator(to_currency)]  # events' `currency`, the settings'


def as_meant(obj: dict[str, Any], errors: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """A copy of `obj` with each value the `errors` (pydantic's, for a top-level field) show
    was a table's way of writing a valid one; None when there is none.

    >>> as_meant({"outcome": "Resolved", "duration_s": "0:02:23"},
    ...          [{"loc": ("call", "outcome"), "type": "literal_error", "input": "Resolved"},
    ...           {"loc": ("call", "duration_s"), "type": "float_parsing", "input": "0:02:23"}])
    {'outcome': 'resolved', 'duration_s': 143.0}
    >>> as_meant({"action": "Add to cart"},
    ...          [{"loc": ("click", "action"), "type": "literal_error", "input": "Add to cart"}])
    {'action': 'add_to_cart'}
    """
    fixes: dict[str, Any] = {}
    for err in errors:
        value, loc = err.get("input"), err["loc"]
        if len(loc) != 2 or not isinstance(value, str):
            continue
        field = str(loc[1])
        if err["type"] == "literal_error":  # "Resolved", "Inbound", "Add to cart", "page-view"
            if (word := as_word(value)) != value:
                fixes[field] = word
        elif err["type"] == "float_parsing" and (m := _HMS.match(value)):  # a duration
            h, mi, s, frac = m.groups()
            fixes[field] = int(h) * 3600 + int(mi) * 60 + int(s) + float(frac or 0)
    return {**obj, **fixes} if fixes else None
