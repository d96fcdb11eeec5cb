"""Source spikes: a source (an event's `channel`) suddenly sending bad or late events.

Two shares are watched per source, each against the source's own baseline:

- dead-lettered: bad events / all events of the source (a producer deployed a broken schema);
- late: events more than the lateness bound (`Settings.lateness_s`) older than their customer's
  latest event / good events of the source (a feed stalled and is catching up: such events miss
  the windowed features and only count in lifetime totals, engine/features.py).

Where the counts come from, and why there: every good event passes through the flow, which
knows each customer's latest event time, so the flow counts events and late events per source
(`tally`, once per customer batch). Events dead-lettered by the API or `nextbest replay` never
reach the flow, so the ingest path (API, replay) appends one small internal record per call that
had bad events, `{"type": "dead_letters", "counts": {source: n}}`, to partition stream 0 in the
pipeline that writes the dead letters (`dead_letter_record`): nothing is added to a call without
bad events, the counts reach the flow in stream order, are replayed and recovered with the
streams like any event (no second counter to poll and reconcile), and a source whose every event
is bad still reaches the flow. The flow sums the
counts per batch and one keyed step holds the `SourceMonitor`.

In a replay faster than real time, a customer's events reach the flow through several partition
streams read side by side (their own, and their anonymous id's before `identify`), which run
apart by up to a batch: at 20,000 events/s over a file spanning months, days of event time. The
lateness bound then widens to what that skew can explain (`Pace`): event time passed per second
of wall time, times `SKEW_S`. Live, where event time passes at wall speed, it stays
`lateness_s`; a source's own lateness within a fast replay goes unseen.

Windows count events, not time: a source's window closes after `window` events (good or bad).
A closed window is a spike when its share is significantly above the baseline (one-sided
binomial test, p < `alpha`) and at least `min_excess` above it. The baseline decays (each
window weighs `decay` times the one after it), so a lasting new level becomes normal; spike
windows count too. An alert is raised when a share enters a spike, then not again for the same
source and share for `cooldown` windows.

>>> mon = SourceMonitor(window=100)
>>> for i in range(5):  # 1 bad event in 100, then a burst of 40 in 100
...     spikes = mon.update({"web": [99, 0, 1]} if i < 4 else {"web": [60, 0, 40]}, ts=float(i))
>>> spikes[0].reason()
'source web: 40% of events dead-lettered in the last 100, baseline 1.1% (p<1e-6)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import orjson
from scipy.stats import binom

from engine.alerts import Alert

Tally = dict[str, list[int]]  # source -> [events, late, dead-lettered]
KINDS = ("dead_letter", "late")
OTHER = "other"  # sources beyond `max_sources` are pooled here


def channel_of(obj: Any) -> str:
    """The source of a (possibly invalid) event: its `channel`, or "unknown".

    >>> channel_of({"channel": "web"}), channel_of({"channel": 3}), channel_of("junk")
    ('web', 'unknown', 'unknown')
    """
    ch = obj.get("channel") if isinstance(obj, dict) else None
    return ch[:32] if isinstance(ch, str) and ch else "unknown"


def channel_of_raw(raw: bytes) -> str:
    """The source of a dead-lettered event from its raw text (not JSON: "unknown").

    >>> channel_of_raw(b'{"type": "nope", "channel": "app"}'), channel_of_raw(b"{oops")
    ('app', 'unknown')
    """
    try:
        return channel_of(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return "unknown"


def tally(events: list[dict[str, Any]], last_ts: float | None, lateness: float) -> Tally:
    """Events and late events per source in one customer's batch (internal records skipped, and
    an anonymous history merged into the customer on `identify`: older than the customer's
    events by nature, and counted when it first arrived).

    >>> tally([{"ts": 9000.0, "channel": "web"}, {"ts": 100.0}], None, 3600.0)
    {'web': [1, 0, 0], 'unknown': [1, 1, 0]}
    """
    out: Tally = {}
    latest = last_ts if last_ts is not None else float("-inf")
    for ev in events:
        if ev.get("_internal") or ev.get("_merged"):
            continue
        c = out.setdefault(channel_of(ev), [0, 0, 0])
        c[0] += 1
        ts = ev["ts"]
        if ts < latest - lateness:
            c[1] += 1
        elif ts > latest:
            latest = ts
    return out


SKEW_S = 2.0  # seconds of wall time a worker's partition reads may run apart


class Pace:
    """How fast event time passes against wall time in one worker, measured over seconds; the
    lateness bound that the worker's own read skew cannot exceed.

    >>> p = Pace(); p.bound(3600.0)  # nothing measured yet: a replay may be starting
    inf
    >>> p.see(1000.0, wall=0.0); p.see(1001.0, wall=1.0); p.bound(3600.0)  # live: 1 s per s
    3600.0
    >>> p.see(87401.0, wall=2.0); p.bound(3600.0)  # a replay: a day per second
    172800.0
    """

    def __init__(self) -> None:
        self.mark: tuple[float, float] | None = None  # (wall, newest event time) at its start
        self.newest = float("-inf")
        self.rate = float("inf")

    def see(self, ts: float, wall: float) -> None:
        self.newest = max(self.newest, ts)
        if self.mark is None:
            self.mark = (wall, self.newest)
        elif wall - self.mark[0] >= 1.0:
            self.rate = (self.newest - self.mark[1]) / (wall - self.mark[0])
            self.mark = (wall, self.newest)

    def bound(self, lateness: float) -> float:
        return max(lateness, self.rate * SKEW_S)


def dead_letter_record(channels: list[str]) -> dict[str, Any]:
    """The internal stream record counting one ingest call's dead letters per source."""
    counts: dict[str, int] = {}
    for ch in channels:
        counts[ch] = counts.get(ch, 0) + 1
    return {"type": "dead_letters", "_internal": True, "event_id": "dl:" + uuid4().hex,
            "customer_id": "~dead_letters", "counts": counts}


def record_tally(record: dict[str, Any]) -> Tally:
    """A dead-letter record as a tally; a malformed one counts nothing."""
    counts = record.get("counts")
    if not isinstance(counts, dict):
        return {}
    return {channel_of({"channel": k}): [0, 0, v] for k, v in counts.items()
            if isinstance(v, int) and v > 0}


def combine(tallies: list[Tally]) -> Tally:
    out: Tally = {}
    for t in tallies:
        for src, (n, late, dead) in t.items():
            c = out.setdefault(src, [0, 0, 0])
            c[0], c[1], c[2] = c[0] + n, c[1] + late, c[2] + dead
    return out


@dataclass
class Spike:
    source: str
    kind: str  # "dead_letter" | "late"
    share: float
    baseline: float
    events: int
    p_value: float

    def reason(self) -> str:
        what = "dead-lettered" if self.kind == "dead_letter" else "late"
        p = "p<1e-6" if self.p_value < 1e-6 else f"p={self.p_value:.2g}"
        return (f"source {self.source}: {self.share:.0%} of events {what} in the last "
                f"{self.events}, baseline {self.baseline:.1%} ({p})")


@dataclass
class Share:
    """One watched share of one source: the open window and the decayed baseline."""

    k: int = 0
    n: int = 0
    base_k: float = 0.0
    base_n: float = 0.0
    windows: int = 0
    spiking: bool = False
    spikes: int = 0
    alerted_at: int | None = None  # window index of the last alert
    last: float | None = None  # the share in the last closed window

    def baseline(self) -> float:
        return (self.base_k + 0.5) / (self.base_n + 1.0)

    def close(self, mon: SourceMonitor, source: str, kind: str) -> Spike | None:
        spike = None
        if self.n:
            self.last = self.k / self.n
        if self.windows >= mon.min_windows and self.n:
            p0, share = self.baseline(), self.k / self.n
            p = float(binom.sf(self.k - 1, self.n, p0))
            spiking = p < mon.alpha and share >= p0 + mon.min_excess
            if spiking and not self.spiking:
                self.spikes += 1
                if self.alerted_at is None or self.windows - self.alerted_at >= mon.cooldown:
                    self.alerted_at = self.windows
                    spike = Spike(source, kind, share, p0, self.n, p)
            self.spiking = spiking
        self.base_k = self.base_k * mon.decay + self.k
        self.base_n = self.base_n * mon.decay + self.n
        self.windows += 1
        self.k = self.n = 0
        return spike


@dataclass
class Source:
    events: int = 0
    late: int = 0
    dead: int = 0
    open: int = 0  # events in the open window
    shares: dict[str, Share] = field(default_factory=lambda: {k: Share() for k in KINDS})


class SourceMonitor:
    """Per-source spike detection over count windows (see the module docstring)."""

    def __init__(self, window: int = 200, alpha: float = 1e-6, min_excess: float = 0.05,
                 decay: float = 0.9, min_windows: int = 2, cooldown: int = 10,
                 max_sources: int = 50) -> None:
        self.window, self.alpha, self.min_excess = window, alpha, min_excess
        self.decay, self.min_windows, self.cooldown = decay, min_windows, cooldown
        self.max_sources = max_sources
        self.sources: dict[str, Source] = {}
        self.ts = 0.0

    def update(self, counts: Tally, ts: float | None = None) -> list[Spike]:
        """Add counts ([events, late, dead-lettered] per source); spikes that just began."""
        if ts is not None:
            self.ts = max(self.ts, ts)
        out: list[Spike] = []
        for name, (n, late, dead) in counts.items():
            if name not in self.sources and len(self.sources) >= self.max_sources:
                name = OTHER
            src = self.sources.get(name) or self.sources.setdefault(name, Source())
            src.events, src.late, src.dead = src.events + n + dead, src.late + late, src.dead + dead
            src.shares["dead_letter"].k += dead
            src.shares["dead_letter"].n += n + dead
            src.shares["late"].k += late
            src.shares["late"].n += n
            src.open += n + dead
            if src.open >= self.window:
                src.open = 0
                out += [s for kind in KINDS if (s := src.shares[kind].close(self, name, kind))]
        return out

    def state(self) -> dict[str, Any]:
        """What `GET /v1/models` shows under `sources`."""
        return {name: {
            "state": "spike" if any(s.spiking for s in src.shares.values())
            else "stable" if src.shares["dead_letter"].windows >= self.min_windows else "warming",
            "events": src.events, "dead_letters": src.dead, "late_events": src.late,
            **{kind: {"last_window": None if s.last is None else round(s.last, 4),
                      "baseline": round(s.baseline(), 4), "spiking": s.spiking,
                      "spikes": s.spikes, "windows": s.windows} for kind, s in src.shares.items()},
        } for name, src in sorted(self.sources.items())}


def spike_alert(spike: Spike, ts: float) -> Alert:
    what = "dead letters" if spike.kind == "dead_letter" else "late events"
    return Alert(type="model_drift", customer_id=None, owner="admin", severity="high",
                 title=f"Source {spike.source}: {what} spiked",
                 reasons=[spike.reason(), "the models learn from what this source sends"],
                 score=round(min(1.0, spike.share), 4), ts=ts,
                 data={"signal": "source", "source": spike.source, "kind": spike.kind,
                       "share": round(spike.share, 4), "baseline": round(spike.baseline, 4)})
