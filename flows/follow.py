"""What follows a customer when their identity or owner changes, for a batch at once: a
visitor's contact history on sign-in, and open alerts on a change of account owner. Called by
the sink (flows/sink.py) after the batch's own writes."""

from __future__ import annotations

from typing import Any

from engine import policy, store


def merge_contacts(client: Any, signed_in: list[tuple[str, str]]) -> None:
    """What each visitor was shown and answered joins their customer's contact history, so
    a sign-in neither resets the caps nor brings back an offer just rejected. One round
    trip reads every sign-in of the batch (most visitors were shown nothing), a second
    writes only where there is something to merge."""
    if not signed_in:
        return
    pipe = client.pipeline(transaction=False)
    for visitor, cid in signed_in:
        for key in (store.contact(visitor), store.contact(cid)):
            pipe.hgetall(key)
            pipe.ttl(key)
    read = pipe.execute()
    merged: dict[str, tuple[dict[bytes, bytes], int]] = {}  # customer: (hash, ttl)
    for i, (visitor, cid) in enumerate(signed_in):
        theirs, their_ttl, mine, my_ttl = read[4 * i:4 * i + 4]
        if not theirs:
            continue
        mine, my_ttl = merged.get(cid, (mine, my_ttl))  # two visitors of one customer
        merged[cid] = (policy.merged_hash(theirs, mine), max(their_ttl, my_ttl))
        pipe.delete(store.contact(visitor))
    for cid, (contact, ttl) in merged.items():
        pipe.hset(store.contact(cid), mapping=contact)
        if ttl > 0:  # contact history lives as long as the longer of the two
            pipe.expire(store.contact(cid), ttl)
    if merged:
        pipe.execute()

def hand_over(client: Any, handovers: list[tuple[str, str, str]]) -> None:
    """The customers' open alerts that were the old owner's become the new owner's (as a
    CRM moves open tasks with an account): listed under `owner=<new>`. Acknowledged ones
    stay as they were handled; the live stream and webhooks told the old owner. A batch's
    hand-overs (a territory moved at once) share their round trips."""
    if not handovers:
        return
    steps: dict[str, list[tuple[str, str]]] = {}  # customer: (old, new) in order
    for cid, old, new in handovers:
        steps.setdefault(cid, []).append((old, new))
    pipe = client.pipeline(transaction=False)
    for cid in steps:
        pipe.zrange(store.customer_alerts(cid), 0, -1)
    customer_of = {aid: cid for cid, ids in zip(steps, pipe.execute()) for aid in ids}
    if not customer_of:
        return
    ids = list(customer_of)
    pipe.hmget(store.ALERT_DOCS, ids)
    pipe.hmget(store.ALERT_STATUS, ids)
    docs, statuses = pipe.execute()
    moved = {}
    for aid, raw, status in zip(ids, docs, statuses):
        if raw is not None and status is None:  # open: no status written yet
            alert = store.decode(raw)
            owner = alert.get("owner")
            for old, new in steps[customer_of[aid]]:  # A to B, then B to C: C's
                owner = new if owner == old else owner
            if owner != alert.get("owner"):
                moved[aid] = store.encode({**alert, "owner": owner})
    if moved:
        client.hset(store.ALERT_DOCS, mapping=moved)
