"""Decisions awaiting the customer's response, and the responses: each answer becomes a model
example with the inputs the decision was made with; no answer within an offer's reward window
counts as ignored (a negative).

A `feedback` event may also answer an offer made outside the engine (a campaign, a clerk in a
store: a `decision_id` the engine never made). It is learned from the customer's features and
attributes when it arrives, and counted apart (`external_feedback` in the offer's performance).
An answer to a decision of the engine's that was already settled (ignored when its window
passed) is recorded, not learned twice. An offer answered once is not counted again (the API's
answer and the same answer as an event, or a form sent twice), and an answer naming an offer
the decision did not serve counts for nothing: the engine remembers, per customer, the
decisions it settled and how each offer was settled (CRC-32s, the latest `MAX_SETTLED`).
"""

from __future__ import annotations

import zlib
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine import uplift
from engine.types import Event
from engine.vector import vectorize

if TYPE_CHECKING:
    from engine.customer import Context, Customer

Output = tuple[Any, ...]
MAX_PENDING = 64  # decisions awaiting feedback per customer; beyond, the oldest count as ignored
MAX_SETTLED = 192  # settled decisions and offers remembered per customer (4 bytes each)


@dataclass
class Pending:
    ts: float
    x: tuple[tuple[str, ...], array] | dict[str, float]  # packed (`_pack`); a dict in old snapshots
    deadlines: dict[str, float]
    channel: str | None = None
    repeat: tuple[str, ...] = ()  # offers shown again within a contact that showed them

    def inputs(self) -> dict[str, float]:
        """The model inputs the decision was made with."""
        if isinstance(self.x, dict):
            return self.x
        keys, values = self.x
        return dict(zip(keys, values))


def _pack(x: dict[str, float], like: Pending | None) -> tuple[tuple[str, ...], array]:
    """A decision's inputs as names + float64 values (exact; a tenth of a dict's memory), the
    names shared with the customer's previous pending decision when they are the same."""
    keys = tuple(x)
    if like is not None and not isinstance(like.x, dict) and like.x[0] == keys:
        keys = like.x[0]
    return keys, array("d", x.values())


def example(model: str, x: dict[str, float], y: bool, ts: float, **extra: Any) -> Output:
    return ("example", model, x, y, ts, extra)


def on_decision(c: Customer, ev: Event, ctx: Context) -> list[Output]:
    """A decision's offers await an answer. One shown again on the channel within the same
    contact (the API's `repeat`: a banner kept from page to page) is the same impression: not
    counted again, answerable by either decision, and ignored once if never answered."""
    served = ev.get("offers", [])
    deadlines = {o: ev["ts"] + ctx.reward_window(o) for o in served}
    if _crc(ev["decision_id"]) in c.settled:
        deadlines = {}  # answered before its record arrived (feedback from Kafka overtook it)
    repeat = tuple(o for o in ev.get("repeat", ()) if o in deadlines)
    last = next(reversed(c.pending.values()), None)
    c.pending[ev["decision_id"]] = Pending(ev["ts"], _pack(ev.get("x", {}), last), deadlines,
                                           ev.get("channel"), repeat)
    out: list[Output] = []
    while len(c.pending) > MAX_PENDING:  # a bound on state: the oldest is settled as ignored
        out += _settle(c, next(iter(c.pending)), ev["ts"], everything=True)
    served = [o for o in served if o not in repeat]
    out += [("impression", "offer:" + o, False, ev["ts"]) for o in served]
    out += [("impression", "offer:" + o, True, ev["ts"]) for o in ev.get("held_out", [])]
    for o, control in [(o, False) for o in served] + [(o, True) for o in ev.get("held_out", [])]:
        out += uplift.track(c.exposures, o, ev["ts"] + ctx.reward_window(o), control, ctx.category(o))
    return out


def on_feedback(c: Customer, ev: Event) -> list[Output]:
    offer, outcome, did = ev["offer_id"], ev["outcome"], ev["decision_id"]
    if _crc(f"{did}|a|{offer}") in c.settled:  # answered already: counted once
        return []
    pend = c.pending.get(did)
    accepted = outcome == "accepted"
    value = float(ev.get("value", 0.0) or 0.0)
    st = c.state
    _remember(c, f"{did}|a|{offer}")
    if pend is None and (_crc(did) not in c.settled or _crc(did + "|x") in c.settled):
        if _crc(did) not in c.settled:  # made elsewhere: its record, should it come after
            _remember(c, did)           # all, waits for no answer
            _remember(c, did + "|x")
        x = vectorize(st.features(), st.attributes, {"channel": ev.get("channel")})
        return [example("offer:" + offer, x, accepted, ev["ts"]),
                ("feedback", "offer:" + offer, outcome, value, False, ev["ts"], True)]
    if pend is None or offer not in pend.deadlines:
        if _crc(f"{did}|i|{offer}") not in c.settled:  # an offer this decision did not serve
            return []
        return [("feedback", "offer:" + offer, outcome, value, True, ev["ts"])]  # late
    del pend.deadlines[offer]
    for other in _same_contact(c, did, offer):  # its other showings: answered by this one
        del c.pending[other].deadlines[offer]
        _remember(c, f"{other}|a|{offer}")
        if not c.pending[other].deadlines:
            _done(c, other)
    if not pend.deadlines:
        _done(c, did)
    x = pend.inputs() or vectorize(st.features(), st.attributes)
    return [example("offer:" + offer, x, accepted, ev["ts"]),
            ("feedback", "offer:" + offer, outcome, value, False, ev["ts"])]


def handed_over(c: Customer) -> dict[str, Any]:
    """What an anonymous visitor who signed in hands to their customer: the pending decisions
    (the visitor's answers, a sign-in to claim an offer is common, then count as the engine's
    own, learned with the inputs the decision was made with) and the settled ones (an answer
    sent again is not learned twice). Empty when there is nothing to hand over."""
    pending = [{"decision_id": did, "ts": p.ts, "x": p.inputs(), "deadlines": p.deadlines,
                "channel": p.channel} for did, p in c.pending.items() if p.deadlines]
    return {"decisions": pending, "settled": list(c.settled)} if pending or c.settled else {}


def adopt(c: Customer, decisions: list[dict[str, Any]], settled: list[int] = ()) -> None:  # type: ignore[assignment]
    """What `handed_over` gave: pending decisions not answered here already, and the settled."""
    for crc in settled:
        if crc not in c.settled:
            c.settled.append(crc)
    del c.settled[:max(0, len(c.settled) - MAX_SETTLED)]
    for d in decisions:
        did = d["decision_id"]
        if did not in c.pending and _crc(did) not in c.settled:
            last = next(reversed(c.pending.values()), None)
            c.pending[did] = Pending(d["ts"], _pack(d["x"], last), dict(d["deadlines"]),
                                     d.get("channel"))
    if decisions:  # oldest first, as decisions arrive: the bound lets the oldest go
        c.pending = dict(sorted(c.pending.items(), key=lambda kv: kv[1].ts))
    while len(c.pending) > MAX_PENDING:  # the bound holds; the oldest leave unlearned
        del c.pending[next(iter(c.pending))]


def next_deadline(c: Customer) -> float | None:
    """The earliest reward window still open: when silence settles an offer as ignored."""
    return min((d for pend in c.pending.values() for d in pend.deadlines.values()), default=None)


def expire(c: Customer, now: float) -> list[Output]:
    """Offers with no feedback within their reward window count as ignored (a negative)."""
    out: list[Output] = []
    for did in list(c.pending):
        out += _settle(c, did, now)
    return out


def _same_contact(c: Customer, did: str, offer: str) -> list[str]:
    """The other pending decisions showing `offer` in the contact `did` showed it in: from the
    showing that was not a repeat to the last repeat after it, on the same channel."""
    channel, group, found = c.pending[did].channel, [], False
    for other, p in c.pending.items():
        if offer not in p.deadlines and other != did or p.channel != channel:
            continue
        if offer not in p.repeat:  # a new contact starts
            if found:
                break
            group = []
        group.append(other)
        found = found or other == did
    return [o for o in group if o != did] if found else []


def _settle(c: Customer, did: str, now: float, everything: bool = False) -> list[Output]:
    """Offers of a pending decision past their deadline (or all of them) count as ignored,
    but for repeat showings: their contact's first showing counts for them."""
    pend, out = c.pending[did], []
    for offer, deadline in list(pend.deadlines.items()):
        if deadline < now or everything:
            del pend.deadlines[offer]
            _remember(c, f"{did}|i|{offer}")  # an answer may still come, late
            if offer in pend.repeat:
                continue
            at = min(deadline, now)
            out.append(example("offer:" + offer, pend.inputs(), False, at))
            out.append(("feedback", "offer:" + offer, "ignored", 0.0, False, at))
    if not pend.deadlines:
        _done(c, did)
    return out


def _done(c: Customer, did: str) -> None:
    """Every offer of the decision answered or ignored: forgotten, but remembered as settled."""
    del c.pending[did]
    _remember(c, did)


def _remember(c: Customer, what: str) -> None:
    """A decision settled (its id), or how one of its offers was (`{id}|a|{offer}` answered,
    `{id}|i|{offer}` ignored), or a decision made elsewhere (`{id}|x`)."""
    c.settled.append(_crc(what))
    if len(c.settled) > MAX_SETTLED:
        del c.settled[0]


def _crc(decision_id: str) -> int:
    return zlib.crc32(decision_id.encode())
