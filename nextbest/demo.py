"""`nextbest demo`: the whole engine against a simulated population, live in the terminal."""

from __future__ import annotations

import random
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from config import Settings
from nextbest.engine import Engine
from nextbest.simulator import Population, expected_random, oracle

START_TS = 1767225600.0  # 2026-01-01T00:00:00Z, event time of the simulation's start
DEMO_POLICY = "caps: []\ncooldown_after_rejection_days: 1\nsuppress_after_acceptance_days: 0\n"
STEP_S = 900.0           # event time advanced per round (15 min: a 2-minute demo spans days)


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    decisions: int = 0
    served: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=1000))
    first: list[tuple[int, float, float]] = field(default_factory=list)
    value: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=1000))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    alerts: int = 0
    models: int = 0
    pending: int = 0

    def rates(self, window: Any) -> tuple[float, float, float]:
        n = len(window) or 1
        return (sum(a for a, _, _ in window) / n, sum(r for _, r, _ in window) / n,
                sum(o for _, _, o in window) / n)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000 if data else 0.0


def table(stats: Stats, url: str) -> Table:
    t = Table(title=f"nextbest demo - API {url}/docs", show_header=True, header_style="bold")
    t.add_column("measure")
    t.add_column("value", justify="right")
    up = max(1e-9, time.monotonic() - stats.started)
    acc, rnd, orc = stats.rates(stats.served)
    acc0, rnd0, _ = stats.rates(stats.first)
    t.add_row("events/s (ingested)", f"{stats.events / up:,.0f}")
    t.add_row("decisions/s", f"{stats.decisions / up:,.1f}")
    t.add_row("acceptance, first 1000 decisions", f"{acc0:.1%} (random {rnd0:.1%})")
    t.add_row("acceptance, last 1000 decisions", f"[bold green]{acc:.1%}[/]")
    t.add_row("  random-choice baseline", f"{rnd:.1%}")
    t.add_row("  oracle (knows hidden tastes)", f"{orc:.1%}")
    if stats.value:
        n = len(stats.value)
        ev, rv, ov = (sum(v[i] for v in stats.value) / n for i in range(3))
        t.add_row("expected value / decision, last 1000", f"[bold green]{ev:.2f}[/]")
        t.add_row("  random choice / oracle", f"{rv:.2f} / {ov:.2f}")
    t.add_row("alerts raised", f"{stats.alerts}")
    t.add_row("models learned", f"{stats.models}")
    t.add_row("events pending in the flow", f"{stats.pending}")
    t.add_row("decision API latency p50 / p99", f"{stats.pct(0.5):.1f} / {stats.pct(0.99):.1f} ms")
    return t


def _offer_categories(client: httpx.Client) -> dict[str, tuple[str | None, float]]:
    offers = client.get("/v1/offers").json()["offers"]
    return {o["id"]: (o.get("category"), float(o.get("value") or 0.0)) for o in offers
            if o["kind"] == "offer" and (not o.get("channels") or "web" in o["channels"])}


def play_round(client: httpx.Client, pop: Population, ts: float, stats: Stats,
               categories: dict[str, tuple[str | None, float]], rng: random.Random) -> None:
    active = [pop.pick() for _ in range(25)]
    events = [ev for c in active for ev in pop.activity(c, ts)]
    res = client.post("/v1/events", json=events)
    res.raise_for_status()
    stats.events += res.json()["accepted"]  # what the engine took, not what was sent
    for c in active[:12]:
        if not c.consent or c.churned:
            continue
        t0 = time.perf_counter()
        r = client.post("/v1/decisions", json={"customer_id": c.id, "channel": "web"})
        stats.latencies.append(time.perf_counter() - t0)
        r.raise_for_status()
        d = r.json()
        stats.decisions += 1
        if not d["offers"]:
            continue
        offer = d["offers"][0]["offer_id"]
        cat, value = categories.get(offer, (None, 0.0))
        accepted = pop.respond(c, cat)
        cats = [k for k, _ in categories.values()]
        row = (int(accepted), expected_random(c, cats), oracle(c, cats))
        stats.served.append(row)
        worth = [c.p_accept(k) * v for k, v in categories.values()]
        stats.value.append((c.p_accept(cat) * value, sum(worth) / len(worth), max(worth)))
        if len(stats.first) < 1000:
            stats.first.append(row)
        client.post(f"/v1/decisions/{d['decision_id']}/feedback",
                    json={"offer_id": offer, "outcome": "accepted" if accepted else "rejected",
                          "value": float(d["offers"][0]["value"]) if accepted else 0.0})


def poll(client: httpx.Client, stats: Stats) -> None:
    status = client.get("/v1/status").json()
    stats.pending, stats.models = status["pending"], status["models"]
    stats.alerts = len(client.get("/v1/alerts", params={"limit": 1000}).json()["alerts"])


def run(settings: Settings, duration: float | None, customers: int, seed: int,
        console: Console | None = None) -> Stats:
    console = console or Console()
    demo_dir = settings.data_dir / "demo"
    shutil.rmtree(demo_dir, ignore_errors=True)
    settings.data_dir = Path(demo_dir)
    settings.model_publish_every = min(settings.model_publish_every, 10)
    settings.max_future_s = 0.0  # a simulation: its event time runs ahead of today's when left on
    # website personalisation slots, not marketing contacts: the demo's copy of the rules
    # relaxes the contact caps (a rejected offer still cools down for a day)
    rules = demo_dir / "rules"
    shutil.copytree(settings.rules_dir, rules)
    (rules / "policy.yaml").write_text(DEMO_POLICY)
    settings.rules_dir = rules
    rng = random.Random(seed)
    pop = Population(customers, rng, START_TS)
    pop.plant_changes(START_TS + 86400)
    with Engine(settings) as engine:
        key = engine.admin_key or next(iter(settings.api_keys))
        console.print(f"[bold]nextbest[/] is running. API docs: {engine.api_url}/docs  "
                      f"console: {engine.api_url}/console")
        console.print(f"API key (all roles): [bold]{key}[/]   e.g.\n  curl -H 'Authorization: "
                      f"Bearer {key}' {engine.api_url}/v1/status\n")
        client = httpx.Client(base_url=engine.api_url, timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
        categories = _offer_categories(client)
        stats, ts, rounds = Stats(), START_TS, 0
        deadline = time.monotonic() + duration if duration else None
        with Live(table(stats, engine.api_url), console=console, refresh_per_second=2) as live:
            try:
                while deadline is None or time.monotonic() < deadline:
                    play_round(client, pop, ts, stats, categories, rng)
                    ts += STEP_S
                    rounds += 1
                    if rounds % 10 == 0:
                        poll(client, stats)
                    live.update(table(stats, engine.api_url))
            except KeyboardInterrupt:
                pass
            poll(client, stats)
            live.update(table(stats, engine.api_url))
        return stats
