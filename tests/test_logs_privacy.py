"""No API key, Redis password or personal data in the logs: the real API (at debug level, access
log on) and the real flow are driven through every kind of request, errors and a Redis outage,
and their captured output is searched for each secret."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import redis

from config import Settings
from engine import store
from nextbest.engine import Engine
from nextbest.redis_server import RedisServer, free_port
from tests.conftest import ALL, ev, wait_for

KEY = "k-logcheck-9f8e7d6c5b4a"
PASSWORD = "pw-logcheck-1a2b3c4d"
EMAIL = "jane.doe.4471@example.com"
PHONE = "+44 7700 900461"
SECRETS = (KEY, PASSWORD, EMAIL, PHONE)
T0 = 1_767_225_600.0


def traffic(c: httpx.Client) -> None:
    """Every route, good and bad, with the personal data in bodies and the key in headers."""
    who = "cust-log-1"
    events = [ev("l1", "profile", T0, who, owner="rep9",
                 attributes={"email": EMAIL, "phone": PHONE, "plan": "gold"}),
              ev("l2", "consent", T0 + 1, who, purpose="marketing", granted=True),
              ev("l3", "transaction", T0 + 2, who, amount=40.0),
              ev("l4", "click", T0 + 3, who, page="/home", note=EMAIL),
              ev("l5", "transaction", T0 + 4, who, amount=-1, email=EMAIL),   # dead-lettered
              {"event_id": "l6", "type": "nope", "contact": PHONE}]           # dead-lettered
    assert c.post("/v1/events", json=events).json()["accepted"] == 4
    d = c.post("/v1/decisions", json={"customer_id": who, "context": {"email": EMAIL}}).json()
    c.post(f"/v1/decisions/{d['decision_id']}/feedback",
           json={"offer_id": (d["offers"] or [{"offer_id": "o"}])[0]["offer_id"],
                 "outcome": "accepted"})
    c.get(f"/v1/customers/{who}")
    c.get(f"/v1/customers/{who}/next-best-action")
    c.get("/v1/alerts", params={"owner": "rep9"})
    c.get("/v1/status")
    c.get("/metrics")
    assert c.post("/v1/decisions", json={"customer_id": EMAIL * 12}).status_code == 422
    assert c.post("/v1/events", content=b'{"email": "' + EMAIL.encode() + b'"' + b" " * 5_000_000
                  ).status_code == 413
    assert c.post("/v1/events", content=b'{"email": "' + EMAIL.encode() + b'", ').status_code == 400
    assert c.get("/v1/models", headers={"Authorization": f"Bearer {KEY}x"}).status_code == 401
    assert c.get("/v1/models", headers={"Authorization": KEY}).status_code == 401
    c.delete(f"/v1/customers/{who}")


def stuck(c: httpx.Client, engine: Engine, s: Settings) -> str:
    """What a stalled flow looks like: each partition's counters and stream ends, the flow's
    stacks (py-spy, when installed) and its log."""
    r = redis.Redis.from_url(s.redis_url)
    parts = []
    for p in range(s.partitions):
        info = r.xinfo_stream(store.stream(p)) if r.exists(store.stream(p)) else {}
        parts.append((p, r.get(store.ingested(p)), r.get(store.processed(p)),
                      info.get("last-generated-id"), info.get("length")))
    proc = engine.procs["flow"]
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    spy = subprocess.run([exe, "dump", "--pid", str(proc.pid)], capture_output=True,
                         text=True) if exe else None
    return repr((c.get("/v1/status").json(), "partitions", parts, "flow exit", proc.poll(),
                 spy.stdout[-6000:] if spy else "no py-spy",
                 (s.data_dir / "flow.log").read_text()[-2000:]))


def test_no_key_password_or_personal_data_in_logs(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r", extra=["--requirepass", PASSWORD]).start()
    s = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0",
                 data_dir=tmp_path / "d", api_port=free_port(), api_keys={KEY: ALL},
                 model_secret="x", flow_recovery=False, partitions=2)
    try:
        with Engine(s, api=False) as engine:  # the flow, its output in d/flow.log
            log = (s.data_dir / "api.log").open("ab")
            api = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "api.app:app_from_env",
                 "--port", str(s.api_port), "--log-level", "debug"],
                env={**os.environ, **s.env()}, stdout=log, stderr=subprocess.STDOUT)
            try:
                engine.wait_api()
                with httpx.Client(base_url=engine.api_url, timeout=10,
                                  headers={"Authorization": f"Bearer {KEY}"}) as c:
                    traffic(c)
                    server.stop()  # an outage: errors get logged, if anything is
                    c.post("/v1/decisions", json={"customer_id": "cust-log-2"})
                    c.post("/v1/events", json=[ev("l7", "click", T0, "cust-log-2", note=EMAIL)])
                    server.start()  # the flow resumes by itself (within 90 s, as in test_durability)
                    wait_for(lambda: c.post("/v1/events", json=[ev("l8", "click", T0, "c9")])
                             .status_code == 202, timeout=20)
                    wait_for(lambda: "fallback" not in c.post(  # the decision breaker closed
                        "/v1/decisions", json={"customer_id": "c9"}).json(), timeout=20)
                    traffic(c)
                    try:
                        wait_for(lambda: c.get("/v1/status").json()["pending"] == 0, timeout=90)
                    except TimeoutError as exc:
                        raise AssertionError(stuck(c, engine, s)) from exc
            finally:
                api.terminate()
                api.wait(10)
    finally:
        server.stop()
    logs = {p.name: p.read_bytes() for p in s.data_dir.glob("*.log")}
    assert {"api.log", "flow.log"} <= set(logs)
    assert b'"POST /v1/events HTTP/1.1" 202' in logs["api.log"]  # what a log shows is captured
    for name, text in logs.items():
        for secret in SECRETS:
            assert secret.encode() not in text, (name, secret)


def test_a_refused_setting_does_not_echo_the_key(tmp_path: Path) -> None:
    """A bad NEXTBEST_API_KEYS stops the API with an error naming the problem, not the key."""
    env = {**os.environ, "NEXTBEST_API_KEYS": json.dumps({KEY: ["root"]}),
           "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0", "NEXTBEST_DATA_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", "from api.app import create_app; "
                          "from config import Settings; create_app(Settings())"],
                         env=env, capture_output=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and b"unknown roles" in out, out[-2000:]
    assert KEY.encode() not in out and PASSWORD.encode() not in out, out[-2000:]
