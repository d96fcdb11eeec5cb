"""The event ids a customer's state remembers, to recognise a redelivered event: 8-byte
digests of the latest `MAX_SEEN` ids in one bytearray (4 KiB at most per customer, pickled
as one bytes object), instead of a dict of id strings (~120 bytes an id).

The API's ingest already deduplicates by event id (for `dedup_ttl_s`) before an event enters a
stream; this is the second line, for inputs that bypass it (Kafka, direct stream writes). A
64-bit digest confuses two ids with probability ~512 / 2**64 per event.

>>> seen = bytearray()
>>> first_time(seen, "e1"), first_time(seen, "e1"), contains(seen, "e2"), len(seen)
(True, False, False, 8)
"""

from __future__ import annotations

from hashlib import blake2b

MAX_SEEN = 512  # ids remembered per customer; beyond, the earliest remembered are forgotten
SIZE = 8


def digest(event_id: str) -> bytes:
    return blake2b(event_id.encode(), digest_size=SIZE).digest()


def contains(seen: bytearray, event_id: str) -> bool:
    return _holds(seen, digest(event_id))


def first_time(seen: bytearray, event_id: str) -> bool:
    """Remember `event_id`; False if it was remembered already (one digest for both)."""
    d = digest(event_id)
    if _holds(seen, d):
        return False
    _append(seen, d)
    return True


def _holds(seen: bytearray, d: bytes) -> bool:
    i = seen.find(d)
    while i != -1:
        if i % SIZE == 0:  # aligned: a whole digest, not the tail of one and head of the next
            return True
        i = seen.find(d, i + 1)
    return False


def _append(seen: bytearray, d: bytes) -> None:
    seen += d
    if len(seen) > SIZE * MAX_SEEN:
        del seen[: SIZE * (MAX_SEEN // 4)]  # a quarter at a time: the cost stays amortised


def from_dict(ids: dict[str, float]) -> bytearray:
    """The remembered ids of a snapshot from before digests (id -> event time), oldest first."""
    seen = bytearray()
    for eid in sorted(ids, key=lambda e: (ids[e], e))[-MAX_SEEN:]:
        seen += digest(eid)
    return seen
