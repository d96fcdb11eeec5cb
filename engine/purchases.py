"""A customer's distinct purchase days, bounded: the latest `MAX_DAYS` are kept (the rhythm
check reads their gaps, `engine.drift`) and the older ones are only counted, so the lifetime
figures (distinct days, first and last day) stay exact.

`first` is None until a day is dropped (the set then holds every day). A purchase older than
every day kept is a new distinct day only when it is before the first ever; in between it
cannot be told from a day already counted and is not counted again (an event more than
`MAX_DAYS` purchase days late: far past the lateness bound).

>>> days: set[int] = set()
>>> dropped, first = 0, None
>>> for d in range(5):
...     dropped, first = add(days, dropped, first, d, limit=3)
>>> sorted(days), dropped, first, history(days, dropped, first)
([2, 3, 4], 2, 0, (5, 0, 4))
>>> add(days, dropped, first, 1, limit=3), add(days, dropped, first, -1, limit=3)
((2, 0), (3, -1))
"""

from __future__ import annotations

MAX_DAYS = 120  # distinct purchase days kept per customer


def add(days: set[int], dropped: int, first: int | None, day: int,
        limit: int = MAX_DAYS) -> tuple[int, int | None]:
    """Count `day` (adding it to `days` in place); returns the new (dropped, first)."""
    if day in days:
        return dropped, first
    if dropped and day < min(days):
        return (dropped + 1, day) if first is not None and day < first else (dropped, first)
    days.add(day)
    if len(days) > limit:
        oldest = min(days)
        days.remove(oldest)
        return dropped + 1, oldest if first is None else first
    return dropped, first


def history(days: set[int], dropped: int, first: int | None) -> tuple[int, int, int] | None:
    """(distinct purchase days, first, last) over the whole history; None before any."""
    if not days:
        return None
    return len(days) + dropped, min(days) if first is None else first, max(days)
