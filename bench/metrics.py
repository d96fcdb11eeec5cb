"""The API's counters, as the benchmarks read them from `GET /metrics` (prometheus-client's own
text parser)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int, timeout: float = 5.0) -> str:
    """/metrics of the API on `port`; empty if it has none (the floor) or does not answer in
    `timeout` s."""
    try:
        res = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout)
    except httpx.HTTPError:
        return ""
    return res.text if res.status_code == 200 else ""


def counter(text: str, sample: str, label: str | None = None) -> dict[str, float]:
    """A counter's value so far (`sample`, e.g. "nextbest_events_total") by the value of `label`
    (all under "" without one)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                key = s.labels.get(label, "") if label else ""
                out[key] = out.get(key, 0.0) + s.value
    return out


def fallbacks(text: str) -> float:
    """Decisions answered from the catalog fallback (they are not personalised)."""
    return sum(counter(text, "nextbest_decision_fallbacks_total").values())


def decision_paths(text: str) -> dict[str, float]:
    """Decisions by how they were answered: ranked, consistency, empty."""
    return counter(text, "nextbest_decision_paths_total", "path")


def new_events(text: str) -> float:
    """New events the API has put on the streams (accepted ones less duplicates): the load a
    step really put on the flow."""
    events = counter(text, "nextbest_events_total", "result")
    return events.get("accepted", 0.0) - events.get("duplicate", 0.0)
