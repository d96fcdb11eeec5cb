"""Webhooks: the real worker process against real receivers on 127.0.0.1 and the real Redis.

Alerts are written through the flow's own sink (or raised by the real flow from events); the
receivers count what they acknowledged with a 2xx per delivery id and check every signature
the way rules/webhooks.yaml tells receivers to.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from config import Settings
from engine import store
from engine import webhooks as wh
from engine.alerts import Alert
from flows.sink import RedisSink
from nextbest.redis_server import free_port
from tests.conftest import ev, get_json, wait_for

SECRET = "s3cret-for-the-tests-0001"
T0 = 1_700_000_000.0
Policy = Callable[[str, int], tuple[int, float]]  # (path, n-th hit of this id) -> status, delay


class Receiver:
    """A threaded HTTP server that answers per path and records every hit."""

    def __init__(self, policies: dict[str, Policy], port: int = 0) -> None:
        self.policies, self.hits, self.lock = policies, [], threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                did = self.headers.get("X-Nextbest-Delivery", "")
                with receiver.lock:
                    n = sum(1 for h in receiver.hits if h["path"] == self.path and h["id"] == did)
                    status, delay = receiver.policies[self.path](did, n)
                    receiver.hits.append({"path": self.path, "id": did, "status": status,
                                          "headers": dict(self.headers), "body": body,
                                          "at": time.monotonic()})
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def acked(self, path: str) -> Counter[str]:
        """2xx answers per delivery id on `path`."""
        with self.lock:
            return Counter(h["id"] for h in self.hits if h["path"] == path
                           and 200 <= h["status"] < 300)

    def of(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [h for h in self.hits if h["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def ok(_: str, __: int) -> tuple[int, float]:
    return 200, 0.0


def verified(hit: dict[str, Any], secret: bytes = SECRET.encode()) -> bool:
    """The verification documented in rules/webhooks.yaml, written out here independently."""
    ts, body = hit["headers"]["X-Nextbest-Timestamp"], hit["body"]
    expected = "sha256=" + hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, hit["headers"]["X-Nextbest-Signature"]) \
        and abs(time.time() - int(ts)) <= 300


class Worker:
    """`python -m nextbest.webhooks`, as `nextbest up` starts it."""

    def __init__(self, settings: Settings) -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = settings.data_dir / "webhooks.log"
        env = {**os.environ, **settings.env(), "WH_TEST_SECRET": SECRET}
        self.proc = subprocess.Popen([sys.executable, "-m", "nextbest.webhooks"], env=env,
                                     stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)


@pytest.fixture
def hooks(settings: Settings, tmp_path: Path) -> Settings:
    """Settings with a copy of the shipped rules (no webhooks yet) and short retries."""
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parents[1] / "rules", rules,
                    ignore=shutil.ignore_patterns("webhooks.yaml", "*.py", "__pycache__"))
    settings.rules_dir = rules
    settings.webhook_backoff_s, settings.webhook_backoff_max_s = 0.05, 0.2
    settings.webhook_max_attempts, settings.webhook_timeout_s = 4, 2.0
    return settings


@pytest.fixture
def workers(hooks: Settings, r: Any) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []

    def start() -> Worker:
        w = Worker(hooks)
        started.append(w)
        wait_for(lambda: w.proc.poll() is not None or (r.exists(store.ALERTS) and any(
            g["name"] == store.WEBHOOK_GROUP.encode() for g in r.xinfo_groups(store.ALERTS))),
            timeout=20)
        assert w.proc.poll() is None, w.log.read_text()[-2000:]
        return w

    yield start
    for w in started:
        w.stop(signal.SIGKILL)


def subscribe(settings: Settings, subs: list[dict[str, Any]]) -> None:
    for s in subs:
        if "secret" not in s:
            s["secret_env"] = "WH_TEST_SECRET"
    (settings.rules_dir / "webhooks.yaml").write_text(yaml.safe_dump({"webhooks": subs}))


def alert(i: int, type: str = "churn_risk", owner: str | None = "rep1",
          severity: str = "high") -> dict[str, Any]:
    return Alert(type=type, customer_id=f"c{i}", owner=owner, title=f"alert {i}",
                 reasons=["test"], score=0.9, ts=T0 + i, severity=severity).to_dict()


def write(settings: Settings, alerts: list[dict[str, Any]]) -> None:
    """Through the flow's own sink, as the flow writes alerts."""
    writer = RedisSink(str(settings.redis_url)).build("alerts", 0, 1)
    writer.write_batch([("alert", a) for a in alerts])
    writer.close()


def settled(r: Any) -> bool:
    return r.hlen(store.WEBHOOK_JOBS) == 0


# -- pure parts -------------------------------------------------------------------------------

def test_receiver_that_fails_then_recovers_gets_each_delivery_once(hooks, workers, r) -> None:
    hooks.webhook_max_attempts = 20  # the refused receiver comes up within these (~3 s)
    flaky = Receiver({"/flaky": lambda _, n: (500, 0.0) if n < 2 else (200, 0.0)})
    late_port = free_port()  # nothing listens here yet: connection refused
    subscribe(hooks, [{"id": "flaky", "url": flaky.url("/flaky")},
                      {"id": "late", "url": f"http://127.0.0.1:{late_port}/late"}])
    workers()
    alerts = [alert(i, type=("churn_risk", "opportunity")[i % 2]) for i in range(8)]
    write(hooks, alerts)
    wait_for(lambda: r.hget(store.WEBHOOK_STATS, "retried"), timeout=10)  # refusals retried
    late = Receiver({"/late": ok}, port=late_port)
    try:
        for sub, rec, path in (("flaky", flaky, "/flaky"), ("late", late, "/late")):
            want = {wh.delivery_id(a["alert_id"], sub): a for a in alerts}
            wait_for(lambda: set(rec.acked(path)) == set(want), timeout=20)  # noqa: B023
            wait_for(lambda: settled(r), timeout=10)
            assert rec.acked(path) == Counter({d: 1 for d in want})  # once each, nothing else
            for hit in rec.of(path):
                assert verified(hit), hit["headers"]
                payload = orjson.loads(hit["body"])
                a = want[hit["id"]]
                assert payload["delivery_id"] == hit["id"] and payload["subscription_id"] == sub
                assert payload["alert"]["alert_id"] == a["alert_id"]
                assert hit["headers"]["X-Nextbest-Event"] == a["type"]
        attempts = Counter(h["id"] for h in flaky.of("/flaky"))
        assert set(attempts.values()) == {3}  # two 500s, then the 200
        assert sorted(int(h["headers"]["X-Nextbest-Attempt"]) for h in flaky.of("/flaky")) == \
            sorted([1, 2, 3] * 8)
        stats = {k.decode(): int(v) for k, v in r.hgetall(store.WEBHOOK_STATS).items()}
        assert stats["delivered"] == 16 and stats["retried"] >= 16 and "failed" not in stats
        # the flow re-writing the same alerts (a replay after a crash) posts nothing again
        hits = len(flaky.of("/flaky")) + len(late.of("/late"))
        write(hooks, alerts)
        wait_for(lambda: r.xpending(store.ALERTS, store.WEBHOOK_GROUP)["pending"] == 0
                 and r.xinfo_groups(store.ALERTS)[0]["last-delivered-id"]
                 == r.xinfo_stream(store.ALERTS)["last-generated-id"], timeout=10)
        time.sleep(0.3)
        assert len(flaky.of("/flaky")) + len(late.of("/late")) == hits
    finally:
        flaky.close()
        late.close()


def test_filters_route_by_owner_type_and_severity(hooks, workers, r) -> None:
    rec = Receiver({p: ok for p in ("/rep1", "/churn", "/high", "/all", "/combo")})
    subscribe(hooks, [
        {"id": "rep1", "url": rec.url("/rep1"), "owners": ["rep1"]},
        {"id": "churn", "url": rec.url("/churn"), "types": ["churn_risk"]},
        {"id": "high", "url": rec.url("/high"), "min_severity": "high"},
        {"id": "all", "url": rec.url("/all")},
        {"id": "combo", "url": rec.url("/combo"), "owners": ["rep2"],
         "types": ["opportunity", "customer_drift"], "secret": SECRET},
    ])
    workers()
    kinds = [("churn_risk", "rep1", "critical"), ("opportunity", "rep1", "medium"),
             ("opportunity", "rep2", "high"), ("customer_drift", "rep2", "low"),
             ("churn_risk", "rep2", "medium"), ("model_drift", None, "high"),
             ("customer_drift", "rep3", "high")]
    alerts = [alert(i, t, o, s) for i, (t, o, s) in enumerate(kinds)]
    write(hooks, alerts)
    expected = {
        "/rep1": [0, 1], "/churn": [0, 4], "/high": [0, 2, 5, 6], "/all": list(range(7)),
        "/combo": [2, 3],
    }
    total = sum(len(v) for v in expected.values())
    wait_for(lambda: sum(len(rec.of(p)) for p in expected) >= total and settled(r), timeout=15)
    time.sleep(0.3)  # anything wrongly routed would arrive too
    try:
        for path, idx in expected.items():
            got = sorted(orjson.loads(h["body"])["alert"]["customer_id"] for h in rec.of(path))
            assert got == sorted(f"c{i}" for i in idx), path
            assert all(verified(h) for h in rec.of(path))
    finally:
        rec.close()


def test_restart_in_the_middle_loses_and_duplicates_nothing(hooks, workers, r) -> None:
    hooks.webhook_concurrency = 2
    rec = Receiver({"/slow": lambda _, __: (200, 0.1)})
    subscribe(hooks, [{"id": "slow", "url": rec.url("/slow")}])
    first = workers()
    alerts = [alert(i) for i in range(40)]
    write(hooks, alerts[:20])
    wait_for(lambda: len(rec.acked("/slow")) >= 5, timeout=10, every=0.02)
    first.stop(signal.SIGTERM)  # a clean stop: POSTs in flight finish and are recorded
    assert first.proc.returncode == 0, first.log.read_text()[-2000:]
    assert len(rec.acked("/slow")) < 20  # stopped in the middle
    write(hooks, alerts[20:30])  # raised while no worker runs
    second = workers()
    wait_for(lambda: len(rec.acked("/slow")) >= 30 and settled(r), timeout=20)
    assert set(rec.acked("/slow").values()) == {1}
    write(hooks, alerts[30:])
    wait_for(lambda: len(rec.acked("/slow")) >= 33, timeout=10, every=0.01)
    second.stop(signal.SIGKILL)  # a crash: only the POSTs in flight may be repeated
    assert len(rec.acked("/slow")) < 40  # killed in the middle
    workers()
    want = [wh.delivery_id(a["alert_id"], "slow") for a in alerts]
    wait_for(lambda: set(rec.acked("/slow")) == set(want) and settled(r), timeout=20)
    time.sleep(0.2)
    acked = rec.acked("/slow")
    assert set(acked) == set(want) and all(acked[d] == 1 for d in want[:30])
    repeated = [d for d in want[30:] if acked[d] > 1]
    assert len(repeated) <= hooks.webhook_concurrency and max(acked.values()) <= 2, repeated
    rec.close()


def test_dead_endpoint_ends_in_failed_list_while_others_keep_flowing(hooks, workers, r,
                                                                     api) -> None:
    hooks.webhook_timeout_s, hooks.webhook_max_attempts = 0.8, 3
    rec = Receiver({"/hang": lambda _, __: (500, 1.5), "/gone": lambda _, __: (410, 0.0),
                    "/ok": ok})
    subscribe(hooks, [{"id": "hang", "url": rec.url("/hang")},
                      {"id": "gone", "url": rec.url("/gone")},
                      {"id": "ok", "url": rec.url("/ok")}])
    workers()
    alerts = [alert(i) for i in range(3)]
    write(hooks, alerts)
    started = time.monotonic()
    wait_for(lambda: len(rec.acked("/ok")) == 3, timeout=10, every=0.02)
    assert time.monotonic() - started < 2.0  # not held up by the hanging receiver
    assert len(rec.of("/hang")) < 9 and not any(
        orjson.loads(x)["subscription_id"] == "hang" for x in r.lrange(store.WEBHOOK_FAILED, 0, -1))
    wait_for(lambda: r.llen(store.WEBHOOK_FAILED) == 6 and settled(r), timeout=20)
    failed = [orjson.loads(x) for x in r.lrange(store.WEBHOOK_FAILED, 0, -1)]
    by_sub = {s: [f for f in failed if f["subscription_id"] == s] for s in ("hang", "gone")}
    assert {f["delivery_id"] for f in by_sub["hang"]} == \
        {wh.delivery_id(a["alert_id"], "hang") for a in alerts}
    assert all(f["attempts"] == 3 and "Timeout" in f["error"] for f in by_sub["hang"])
    assert all(f["attempts"] == 1 and f["error"] == "HTTP 410" for f in by_sub["gone"])  # final
    assert set(Counter(h["id"] for h in rec.of("/hang")).values()) == {3}
    assert len(rec.of("/gone")) == 3 and rec.acked("/ok") == Counter(
        {wh.delivery_id(a["alert_id"], "ok"): 1 for a in alerts})
    metrics = api.get("/metrics").text
    for result, n in (("delivered", 3), ("retried", 6), ("failed", 6)):
        assert f'nextbest_webhook_deliveries_total{{result="{result}"}} {n}.0' in metrics
    out = subprocess.run([sys.executable, "-m", "nextbest.webhooks", "--failed", "2"],
                         env={**os.environ, **hooks.env()}, capture_output=True, timeout=30,
                         check=True)
    assert [orjson.loads(x) for x in out.stdout.splitlines()] == failed[:2], out.stderr
    rec.close()


def test_alert_raised_by_the_flow_reaches_its_webhook(hooks, workers, r, api, flow) -> None:
    rec = Receiver({"/rep4": ok, "/other": ok})
    subscribe(hooks, [{"id": "rep4", "url": rec.url("/rep4"), "owners": ["rep4"],
                       "types": ["opportunity"]},
                      {"id": "other", "url": rec.url("/other"), "owners": ["someone-else"]}])
    workers()
    browse = [ev(f"br{i}", "click", T0 + i * 60, "browser", action="add_to_cart",
                 category="electronics") for i in range(6)]
    api.post("/v1/events", json=[ev("br-o", "profile", T0, "browser", owner="rep4"), *browse])
    flow.drain()
    listed = get_json(api, "/v1/alerts", params={"owner": "rep4"})["alerts"]
    assert [a["type"] for a in listed] == ["opportunity"]
    wait_for(lambda: rec.acked("/rep4"), timeout=15)
    (hit,) = rec.of("/rep4")
    assert verified(hit) and orjson.loads(hit["body"])["alert"]["alert_id"] == listed[0]["alert_id"]
    assert hit["id"] == wh.delivery_id(listed[0]["alert_id"], "rep4")
    assert not rec.of("/other")
    rec.close()
