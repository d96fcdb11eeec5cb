"""The command line as a user runs it: replay, up, demo (real processes)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rich.console import Console

from nextbest.redis_server import free_port

NEXTBEST = [sys.executable, "-m", "nextbest.cli"]


def env(tmp: Path, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("NEXTBEST_") and k != "REDIS_URL"}
    return {**out, "NEXTBEST_DATA_DIR": str(tmp), "NEXTBEST_MODEL_SECRET": "cli-test", **extra}


def test_replay_starts_what_it_needs_and_waits_for_the_flow(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    lines = [json.dumps({"event_id": f"r{i}", "type": "click", "ts": 1_767_225_600 + i,
                         "customer_id": f"c{i % 7}", "category": "home"}) for i in range(300)]
    # as a Windows tool saves it: a byte-order mark first, CRLF line ends
    f.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines + ['{"type": "broken"', lines[0]]) + "\r\n").encode())
    res = subprocess.run([*NEXTBEST, "replay", str(f)], env=env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "accepted 300, duplicates 1, dead-lettered 1" in res.stdout
    assert "302 events (" in res.stdout  # the progress counts events, with their rate
    assert "the flow has processed everything" in res.stdout
    # afterwards, with nothing running, the folder's data can still be inspected
    dl = subprocess.run([*NEXTBEST, "deadletter", "list"], env=env(tmp_path), capture_output=True,
                        text=True, timeout=60)
    assert dl.returncode == 0 and "line 301" in dl.stdout and "not JSON" in dl.stdout, dl.stdout
    ev = subprocess.run([*NEXTBEST, "evaluate"], env=env(tmp_path), capture_output=True, text=True,
                        timeout=60)
    assert ev.returncode == 0 and "nothing to evaluate" in ev.stdout, ev.stdout
    bad = subprocess.run([*NEXTBEST, "evaluate", "--lever", "gold_card"], env=env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--lever takes offer=weight" in bad.stdout, bad.stdout + bad.stderr
    none = subprocess.run([*NEXTBEST, "deadletter", "list"], env=env(tmp_path / "empty"),
                          capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "no engine data" in none.stdout
    # a gzipped file, as public data sets come, and standard input: the same events again are
    # all duplicates, new ones accepted
    gz = tmp_path / "events.jsonl.gz"
    more = [json.dumps({"event_id": f"z{i}", "type": "click", "ts": 1_767_225_600 + i,
                        "customer_id": "z"}) for i in range(50)]
    gz.write_bytes(gzip.compress("\n".join(lines[:100] + more).encode()))
    res = subprocess.run([*NEXTBEST, "replay", str(gz)], env=env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert "accepted 50, duplicates 100, dead-lettered 0" in res.stdout, res.stdout + res.stderr
    piped = "\n".join(more + [json.dumps({"event_id": "p1", "type": "click", "ts": 1_767_225_600,
                                          "customer_id": "z"})])
    res = subprocess.run([*NEXTBEST, "replay", "-"], env=env(tmp_path), input=piped,
                         capture_output=True, text=True, timeout=120)
    assert "accepted 1, duplicates 50, dead-lettered 0" in res.stdout, res.stdout + res.stderr


def test_up_serves_until_interrupted(tmp_path: Path) -> None:
    """With CONTRACT.md's own example of NEXTBEST_API_KEYS: a short key is served, with a
    warning that it is easy to guess."""
    port = free_port()
    keys = json.dumps({"k-admin": ["admin", "ingest", "decide", "agent", "sales"]})
    proc = subprocess.Popen([*NEXTBEST, "up"], env=env(tmp_path, NEXTBEST_API_PORT=str(port),
                                                        NEXTBEST_API_KEYS=keys,
                                                        NEXTBEST_REDIS_FSYNC="always"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        h = {"Authorization": "Bearer k-admin"}
        r = httpx.post(url + "/v1/events", headers=h, json={"event_id": "u1", "type": "click",
                                                             "ts": 1_767_225_600, "customer_id": "u"})
        assert r.status_code == 202
        for _ in range(100):
            if httpx.get(url + "/v1/customers/u", headers=h).status_code == 200:
                break
            time.sleep(0.1)
        assert httpx.get(url + "/v1/customers/u", headers=h).json()["features"]["click_count_1h"] == 1
        embedded = redis.Redis.from_url((tmp_path / "redis.url").read_text())
        assert embedded.config_get("appendfsync") == {"appendfsync": "always"}
        # a second engine on the same folder is refused, and the first one is left alone (it
        # started its own Redis on the same file and flow on the same snapshots, and the folder
        # would not start again)
        second = subprocess.run([*NEXTBEST, "up"], env=env(tmp_path, NEXTBEST_API_PORT=str(free_port())),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another nextbest (pid" in second.stdout, second.stdout
        assert httpx.get(url + "/readyz", timeout=5).status_code == 200
        assert (tmp_path / "redis.url").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired as exc:  # say which child held on
            proc.kill()
            held = exc.output.decode() if isinstance(exc.output, bytes) else exc.output or ""
            raise AssertionError("nextbest up did not exit within 30 s of SIGTERM:\n"
                                 + held[-3000:]) from None
    assert proc.returncode == 0, out[-2000:]
    assert "nextbest is up" in out
    assert "shorter than 16 characters and easy to guess" in out and "k-admin" not in out


def test_stop_waits_for_its_children_together(tmp_path: Path,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """Two children that ignore SIGTERM: both are killed after one timeout, not one each."""
    from config import Settings
    from nextbest.engine import Engine

    engine = Engine(Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1"))
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    for name in ("one", "two"):
        engine._spawn(name, ["-c", stubborn])
    procs = list(engine.procs.values())
    time.sleep(1.0)  # both have set their handlers
    t0 = time.monotonic()
    engine._stop_all(timeout=2.0)
    took = time.monotonic() - t0
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    assert 2.0 <= took < 3.5, took
    err = capfd.readouterr().err
    assert "one did not stop within 2s" in err and "two did not stop within 2s" in err


def test_the_demo_keeps_running_when_its_event_time_passes_today(tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    """The demo's simulated clock runs hours of event time per second: left on, it passes the
    machine's clock, and its events must still be taken (no `NEXTBEST_MAX_FUTURE_S` limit)."""
    from config import Settings
    from nextbest import demo

    monkeypatch.setattr(demo, "START_TS", time.time() + 30 * 86400)  # already a month ahead
    settings = Settings(data_dir=tmp_path, api_port=free_port(), model_secret="cli-test")
    stats = demo.run(settings, 6.0, 200, 1, Console(quiet=True))
    assert stats.events > 100 and stats.decisions > 0


def test_demo_runs_and_reports(tmp_path: Path) -> None:
    res = subprocess.run([*NEXTBEST, "demo", "--duration", "15", "--customers", "500",
                          "--port", str(free_port())], env=env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "API docs: http://127.0.0.1:" in res.stdout and "API key (all roles)" in res.stdout
    assert "acceptance" in res.stdout and "vs random" in res.stdout


def still_running(procs: list[Any], timeout: float) -> list[Any]:
    """Those of `procs` still running after up to `timeout` s; a zombie has exited (an orphan's
    new parent, this container's PID 1, may not reap it)."""
    import psutil

    _, alive = psutil.wait_procs(procs, timeout=timeout)
    out = []
    for p in alive:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_nothing_outlives_an_up_killed_outright(tmp_path: Path) -> None:
    """SIGKILL leaves `nextbest up` no chance to stop its children: Redis, the flow, the API
    and the webhooks worker stop on their own (Linux's parent-death signal)."""
    import psutil

    port = free_port()
    proc = subprocess.Popen([*NEXTBEST, "up"], env=env(tmp_path, NEXTBEST_API_PORT=str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4, children  # Redis, webhooks, flow, API
    finally:
        proc.kill()
        proc.wait()
    alive = still_running(children, timeout=20)
    for p in alive:
        p.kill()
    assert not alive, alive


def test_a_sigterm_while_starting_stops_what_started(tmp_path: Path) -> None:
    """A supervisor's stop while the engine is still starting: up exits cleanly (0), with no
    child left behind (it used to die by the signal, its handler not yet installed)."""
    import psutil

    proc = subprocess.Popen([*NEXTBEST, "up"], env=env(tmp_path, NEXTBEST_API_PORT=str(free_port())),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (tmp_path / "redis.url").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # Redis is up; the flow and the API are starting
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=40) == 0
    finally:
        if proc.poll() is None:  # an up that ignored it: SIG_IGN once leaked to its children
            up = psutil.Process(proc.pid)
            for p in [*up.children(recursive=True), up]:
                p.kill()
    assert not still_running(children, timeout=10)


def test_settings_errors_name_the_setting_and_keep_the_keys_secret(tmp_path: Path) -> None:
    from config.connect import redacted

    for keys, said in [('{"k-admin-0123456789": "admin"}', "NEXTBEST_API_KEYS: Input should be"),
                       ('{"k-admin-0123456789": ["admin",}', "NEXTBEST_API_KEYS: not valid JSON")]:
        res = subprocess.run([*NEXTBEST, "up"], env=env(tmp_path, NEXTBEST_API_KEYS=keys),
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2 and said in res.stdout, res.stdout + res.stderr
        assert "0123456789" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    assert redacted("redis://:s3cret@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert redacted("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"


def test_replay_stops_waiting_for_a_flow_that_stopped(tmp_path: Path, redis_url: str) -> None:
    """Replay waited up to an hour for a flow that had died; now it says so once the flow's
    heartbeat has been gone 10 s (or at once when the flow it started itself exits)."""
    from engine import store

    redis.Redis.from_url(redis_url).set(store.HEARTBEAT, "1", ex=2)  # a flow, about to die
    f = tmp_path / "events.jsonl"
    f.write_text(json.dumps({"event_id": "h1", "type": "click", "ts": 1_767_225_600,
                             "customer_id": "h"}) + "\n")
    started = time.monotonic()
    res = subprocess.run([*NEXTBEST, "replay", str(f)], env=env(tmp_path, REDIS_URL=redis_url),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "the flow stopped (no heartbeat for 10 s): 1 events" in res.stdout
    assert "(into REDIS_URL:" in res.stdout and time.monotonic() - started < 60
