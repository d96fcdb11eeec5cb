"""Scale-out as configuration: the container set-up is consistent, and the processes it
describes (several API workers, a multi-worker flow) run here without containers. A flow of
2 processes x 2 workers computes exactly what 1 x 1 does on the same input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis
import yaml
from rich.console import Console

from api import metrics
from bench.data import write_events
from config import Settings
from engine import store
from nextbest.engine import Engine
from nextbest.redis_server import free_port
from nextbest.replay import feed
from tests.conftest import ALL, KEY, ev

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "redpanda", "flow", "api", "prometheus", "grafana"} <= set(services)
    assert (ROOT / services["api"]["build"]["dockerfile"]).exists()
    assert "nextbest.flowrun" in " ".join(services["flow"]["command"])
    assert services["flow"]["environment"]["NEXTBEST_FLOW_WORKERS"] == "2"
    assert services["api"]["environment"]["NEXTBEST_API_WORKERS"] == "2"
    for svc in ("prometheus", "grafana"):
        for volume in services[svc]["volumes"]:
            assert (DOCKER / volume.split(":")[0]).exists(), volume
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["api:8000"]
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for package in ("engine", "flows", "api", "config", "rules", "nextbest"):
        assert f"COPY {package} {package}" in dockerfile


def test_dashboard_queries_metrics_the_api_exports() -> None:
    exported = set()
    for m in vars(metrics).values():
        name = getattr(m, "_name", None)
        if name:
            kind = getattr(m, "_type", "")
            exported |= {name, name + "_total", name + "_bucket", name + "_count", name + "_sum"} \
                if kind in ("counter", "histogram") else {name}
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "nextbest.json").read_text())
    assert len(dashboard["panels"]) >= 8
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for used in re.findall(r"nextbest_[a-z_]+", target["expr"]):
                assert used in exported, (panel["title"], used)


def test_the_compose_processes_run_without_containers(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, api_port=free_port(), api_workers=2, flow_workers=2,
                 api_keys={KEY: ALL}, model_secret="x", flow_recovery=False)
    with Engine(s) as engine:
        c = httpx.Client(base_url=engine.api_url, headers={"Authorization": f"Bearer {KEY}"})
        events = [ev(f"s{i}", "click", 1_767_225_600.0 + i, f"c{i % 20}", category="home") for i in range(200)]
        assert c.post("/v1/events", json=events).json()["accepted"] == 200
        deadline = time.monotonic() + 30
        while c.get("/v1/status").json()["pending"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/v1/status").json()["customers"] == 20
        for i in range(20):
            assert c.post("/v1/decisions", json={"customer_id": f"c{i}", "channel": "web"}).status_code == 200
        text = c.get("/metrics").text
        served = sum(float(line.split()[-1]) for line in text.splitlines()
                     if line.startswith("nextbest_decisions_total{"))
        assert served == 20  # counted across both API workers


def _run_flow(settings: Settings, layout: list[list[str]]) -> dict:
    """Run the flow as the given processes (argument lists) until all events are processed."""
    env = {**os.environ, **settings.env()}
    procs = [subprocess.Popen([sys.executable, "-m", "nextbest.flowrun", "--no-recovery", *args], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for args in layout]
    c = redis.Redis.from_url(str(settings.redis_url))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            left = sum(int(c.get(store.ingested(p)) or 0) - int(c.get(store.processed(p)) or 0)
                       for p in range(settings.partitions))
            if left == 0:
                break
            time.sleep(0.2)
        time.sleep(3)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    docs = {k.decode(): {f: v for f, v in store.decode(c.get(k)).items() if f != "s"}
            for k in c.scan_iter(match="nb:c:*", count=1000)}
    metas = {k.decode(): store.decode(v) for k, v in c.hgetall(store.MODELS_META).items()}
    return {"docs": docs,
            "models": {n: (m["examples"], m["positives"], m["performance"]) for n, m in metas.items()},
            "alerts": sorted((a["type"], a["customer_id"] or "", a["title"]) for a in
                             (store.decode(f[b"a"]) for _, f in c.xrange(store.ALERTS)))}


def test_two_processes_of_two_workers_equal_one_worker(redis_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_events(events, customers=1500, rounds=60, seed=3)
    s = Settings(redis_url=redis_url, data_dir=tmp_path / "d", partitions=4, model_publish_every=1,
                 model_secret="x", api_keys={})
    r = redis.Redis.from_url(redis_url)
    feed(s, events, Console(quiet=True))
    one = _run_flow(s, [[]])
    r.flushall()
    feed(s, events, Console(quiet=True))
    ports = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    four = _run_flow(s, [["-w", "2", "-i", "0", "-a", ports], ["-w", "2", "-i", "1", "-a", ports]])
    assert len(one["docs"]) == 1500
    assert four["docs"] == one["docs"]
    assert four["models"] == one["models"]
    # the same alerts for the same customers; an alert's timestamp is the event time of the
    # batch it was raised in, which depends on batching. churn_risk depends on which model
    # version a worker had loaded when it scored (timing), so it is left out
    exact = [a for a in one["alerts"] if a[0] != "churn_risk"]
    assert [a for a in four["alerts"] if a[0] != "churn_risk"] == exact
    assert exact
