"""Consent per purpose, for every channel or for one: the latest by event time wins.

A `consent` event without `channel` sets its purpose for every channel; with one, for that
channel only. Held flat: `marketing` (every channel) and `marketing/email` (e-mail only) ->
granted, each stamped with its event's time. A record for one channel holds only while it is
newer than the purpose's record for every channel: a later withdrawal for all channels
overrides an earlier grant for one, and a later grant for one channel overrides an earlier
withdrawal for all.

What the purposes gate (DESIGN.md: consent is a gate, not a rule among rules):
- `marketing`: marketing offers need it granted; without a record there is none.
- `personalization`: withdrawn, decisions for the customer leave their profile aside (features,
  attributes, scores) and answer as for a visitor the engine does not know. Without a record it
  holds: the engine serves customers on their own channels.
Without a record of the customer's own, a decision takes the request's `context.consent`
(`{"marketing": true}`: the website's cookie banner, for anonymous visitors).

>>> values, stamps = {}, {}
>>> apply(values, stamps, {"purpose": "marketing", "granted": True, "ts": 10})
>>> apply(values, stamps, {"purpose": "marketing", "channel": "email", "granted": False, "ts": 20})
>>> effective(values, "marketing", "web"), effective(values, "marketing", "email")
(True, False)
>>> apply(values, stamps, {"purpose": "marketing", "granted": False, "ts": 30})
>>> values, effective(values, "marketing", "email")
({'marketing': False}, False)
>>> apply(values, stamps, {"purpose": "marketing", "channel": "web", "granted": True, "ts": 25})
>>> effective(values, "marketing", "web")  # older than the withdrawal for every channel
False
"""

from __future__ import annotations

from typing import Any

SEP = "/"
MAX_CHANNELS = 16  # records for one channel per customer (a channel is any short word)
Stamps = dict[str, tuple[float, str]]


def key(purpose: str, channel: str | None = None) -> str:
    return f"{purpose}{SEP}{channel}" if channel else purpose


def apply(values: dict[str, bool], stamps: Stamps, event: dict[str, Any], prefix: str = "") -> None:
    """Fold one consent event into `values` (name -> granted) and `stamps` (`prefix` + name ->
    (ts, event id)), in any arrival order."""
    purpose, channel = event["purpose"], event.get("channel")
    name = key(purpose, channel)
    stamp = (float(event["ts"]), str(event.get("event_id", "")))
    if stamp < stamps.get(prefix + name, (-1.0, "")):
        return
    if channel and stamp < stamps.get(prefix + purpose, (-1.0, "")):
        return  # the purpose was set for every channel since
    stamps[prefix + name] = stamp
    values[name] = bool(event["granted"])
    mine = [n for n in values if n.startswith(purpose + SEP)]
    if not channel:  # this record overrides every older one for a single channel
        stale = [n for n in mine if stamps.get(prefix + n, (-1.0, "")) < stamp]
    else:
        mine.sort(key=lambda n: stamps.get(prefix + n, (-1.0, "")))
        stale = mine[: max(0, len(mine) - MAX_CHANNELS)]
    for n in stale:
        del values[n]
        stamps.pop(prefix + n, None)


def effective(values: dict[str, bool], purpose: str, channel: str | None) -> bool | None:
    """The customer's consent to `purpose` on `channel`: None when never given nor withdrawn."""
    if channel:
        one = values.get(f"{purpose}{SEP}{channel}")
        if one is not None:
            return one
    return values.get(purpose)


def for_decision(values: dict[str, bool], purpose: str, channel: str | None,
          context: dict[str, Any]) -> bool | None:
    """`effective`, or else what the request's `context.consent` says (the website's cookie
    banner, for visitors who never sent a consent event: anonymous ones cannot). A record of the
    customer's own always wins over the request.

    >>> for_decision({}, "marketing", "web", {"consent": {"marketing": True}})
    True
    >>> for_decision({"marketing": False}, "marketing", "web", {"consent": {"marketing": True}})
    False
    """
    mine = effective(values, purpose, channel)
    if mine is None:
        said = context.get("consent")
        if isinstance(said, dict) and isinstance(said.get(purpose), bool):
            return said[purpose]
    return mine


def stamped(values: dict[str, bool], stamps: Stamps, prefix: str = "") -> dict[str, float]:
    """Each record's event time, for the document (the API merges consent ingested since)."""
    return {n: stamps[prefix + n][0] for n in values if prefix + n in stamps}


def merge(doc: dict[str, Any], ingested: dict[bytes, bytes]) -> tuple[dict[str, bool], dict[str, float]]:
    """The document's consent (`c`, stamped by `ct`, else by its time `t`) with records the
    ingest path wrote since (the consent hash: name -> "1"/"0", name:ts -> ts), as if the flow
    had folded them in already."""
    values = dict(doc.get("c") or {})
    times = doc.get("ct") or {}
    stamps: Stamps = {n: (float(times.get(n, doc.get("t", 0.0))), "") for n in values}
    records = []
    for field, value in ingested.items():
        name = field.decode()
        if not name.endswith(":ts"):
            purpose, _, channel = name.partition(SEP)
            ts = float(ingested.get(field + b":ts", b"0"))
            records.append({"purpose": purpose, "channel": channel or None, "ts": ts,
                            "granted": value == b"1"})
    for record in sorted(records, key=lambda r: r["ts"]):
        apply(values, stamps, record)
    return values, {n: s[0] for n, s in stamps.items()}
