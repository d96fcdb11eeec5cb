"""The container set-up (docker/) is consistent with the code. There is no Docker engine on the
development machines, so nothing is built or started here: these checks read the files. The
processes the compose file describes run without containers in tests/test_scale.py."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from api import metrics
from config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
FLOWS = ("flow-0", "flow-1")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _arg(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_services_images_and_referenced_files() -> None:
    services = _compose()["services"]
    assert {"redis", "redpanda", "redpanda-init", *FLOWS, "api", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc, name
        if "build" in svc:
            context = (DOCKER / svc["build"]["context"]).resolve()
            assert context == ROOT and (context / svc["build"]["dockerfile"]).exists(), name
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), (name, volume)
            else:
                assert source in _compose()["volumes"], (name, volume)


def test_dockerfile_copies_every_package_and_installs_the_kafka_extra() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert f"COPY {package} {package}" in dockerfile and (ROOT / package).is_dir()
    assert '".[kafka]"' in dockerfile and "kafka" in pyproject["project"]["optional-dependencies"]
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert "COPY docker/entrypoint.sh" in dockerfile and (DOCKER / "entrypoint.sh").stat().st_mode & 0o111


def test_engine_settings_in_compose_are_real_settings() -> None:
    services = _compose()["services"]
    for name in (*FLOWS, "api"):
        env = services[name]["environment"]
        for key in env:
            if key.startswith("NEXTBEST_"):  # a misspelt setting would be silently ignored
                assert key.removeprefix("NEXTBEST_").lower() in Settings.model_fields, (name, key)
        values = {k.removeprefix("NEXTBEST_").lower(): v for k, v in env.items()
                  if k.startswith("NEXTBEST_") and "${" not in str(v)}
        s = Settings(redis_url=env["REDIS_URL"], api_keys={}, **values)
        assert s.redis_url.split("//")[1].split(":")[0] in services  # the redis service


def test_flow_services_form_one_bytewax_cluster_reading_kafka() -> None:
    services = _compose()["services"]
    addresses = [f"{name}:2101" for name in FLOWS]
    topic = shlex.split(services["redpanda-init"]["command"][0])
    for i, name in enumerate(FLOWS):
        svc = services[name]
        cmd, env = svc["command"], svc["environment"]
        assert cmd[:3] == ["python", "-m", "nextbest.flowrun"]
        assert _arg(cmd, "-w") == env["NEXTBEST_FLOW_WORKERS"] == "2"
        assert _arg(cmd, "-i") == str(i) and _arg(cmd, "-a").split(";") == addresses
        assert env["NEXTBEST_SOURCE"] == "kafka" and env["BYTEWAX_DATAFLOW_API_ENABLED"] == "true"
        assert env["NEXTBEST_KAFKA_BROKERS"] == "redpanda:9092"
        assert env["NEXTBEST_KAFKA_TOPIC"] in topic
        assert "redpanda:9092" in " ".join(services["redpanda"]["command"])
        assert svc["volumes"] == services[FLOWS[0]]["volumes"]  # recovery shared by the cluster


def test_api_workers_and_prometheus_targets() -> None:
    services = _compose()["services"]
    api = services["api"]
    assert _arg(api["command"], "--workers") == api["environment"]["NEXTBEST_API_WORKERS"] == "2"
    assert "api.app:app_from_env" in api["command"]
    prom = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"api:{_arg(api['command'], '--port')}", *(f"{f}:3030" for f in FLOWS)}


def test_grafana_provisioning_matches_the_dashboard() -> None:
    services = _compose()["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    prov = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/nextbest.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == mounts["./grafana/dashboards"]
    ds = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    source = ds["datasources"][0]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in services
    dashboard = json.loads((DOCKER / "grafana/dashboards/nextbest.json").read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]


def api_metric_names() -> set[str]:
    exported = set()
    for m in vars(metrics).values():
        name = getattr(m, "_name", None)
        if name:
            kind = getattr(m, "_type", "")
            exported |= {name, name + "_total", name + "_bucket", name + "_count", name + "_sum"} \
                if kind in ("counter", "histogram") else {name}
    return exported


def dashboard_metrics(prefix: str) -> set[str]:
    dashboard = json.loads((DOCKER / "grafana/dashboards/nextbest.json").read_text())
    return {m for p in dashboard["panels"] for t in p["targets"]
            for m in re.findall(prefix + r"[a-z_]+", t["expr"])}


def test_dashboard_covers_the_engine_with_metrics_the_api_exports() -> None:
    dashboard = json.loads((DOCKER / "grafana/dashboards/nextbest.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("events", "decisions", "latency", "lag", "acceptance", "drift"):
        assert topic in titles, topic
    used = dashboard_metrics("nextbest_")
    assert used and used <= api_metric_names(), used - api_metric_names()
    # bytewax's metrics are checked against a running flow in tests/test_scale.py
    assert dashboard_metrics("bytewax_")


def test_webhook_worker_service_runs_the_real_module() -> None:
    import importlib

    svc = _compose()["services"]["webhooks"]
    assert svc["command"][:2] == ["python", "-m"]
    module = importlib.import_module(svc["command"][2])
    assert hasattr(module, "main")
