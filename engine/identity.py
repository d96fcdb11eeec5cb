"""Identity resolution for anonymous ids, keyed by the anonymous id.

Before `identify`, events of an anonymous id are processed under the pseudo-customer
`anon:<id>` and kept (bounded) so they can be merged. On `identify`, the kept events are handed
to the customer (the customer's dedup by event id makes this safe to repeat), the pseudo-customer
is forgotten, and from then on the id's events go straight to the customer. A device can change
hands (another customer signs in on it): the identify latest in event time holds the link,
whatever order identifies arrive in. An erased customer's anonymous ids are unlinked (an
`unlink` record the sink appends for each): their next click starts a new visitor, and what a
visitor kept for merging is gone with them.

>>> s, out = resolve(None, {"type": "click", "event_id": "e1", "ts": 1.0, "anonymous_id": "a"})
>>> [o[0] for o in out], out[0][1]["customer_id"]
(['event'], 'anon:a')
>>> s, out = resolve(s, {"type": "identify", "event_id": "e2", "ts": 2.0, "anonymous_id": "a", "customer_id": "c"})
>>> [(o[0], o[1].get("customer_id") if o[0] == "event" else o[1]) for o in out]
[('link', 'a'), ('event', 'c'), ('event', 'c'), ('event', 'anon:a')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.types import Event

MAX_KEPT = 500


@dataclass
class Anonymous:
    customer_id: str | None = None
    kept: list[Event] = field(default_factory=list)
    linked_at: tuple[float, str] = (-1.0, "")  # the linking identify's (ts, event id)


def resolve(state: Anonymous | None, ev: Event) -> tuple[Anonymous | None, list[tuple[Any, ...]]]:
    if ev["type"] == "unlink":  # its customer was erased: the link and anything kept go
        done = ev.get("_p", -1), ev.get("_id")
        return None, [("progress", done[0], ev.get("_seq", 0)), *([("spent", *done)] if done[1] else [])]
    state = state or Anonymous()
    anon = ev["anonymous_id"]
    if ev["type"] == "identify":
        cid = ev["customer_id"]
        stamp = (ev["ts"], ev["event_id"])
        if stamp < state.linked_at:  # an earlier sign-in arriving late: the later one stands
            return state, [("event", ev)]
        first_link = state.customer_id is None
        state.customer_id, state.linked_at = cid, stamp
        out: list[tuple[Any, ...]] = [("link", anon, cid), ("event", ev)]
        # marked: counted by the source monitor when first processed, and not late now
        out += [("event", {**kept, "customer_id": cid, "_merged": True}) for kept in state.kept]
        if first_link:  # the pseudo-customer goes, in order after its own events
            out.append(("event", {"type": "forget", "_internal": True, "customer_id": "anon:" + anon,
                                  "event_id": "forget:" + anon, "ts": ev["ts"], "into": cid}))
        state.kept = []
        return state, out
    if state.customer_id is not None:
        return state, [("event", {**ev, "customer_id": state.customer_id})]
    state.kept = (state.kept + [ev])[-MAX_KEPT:]
    return state, [("event", {**ev, "customer_id": "anon:" + anon})]
