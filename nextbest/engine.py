"""Start and stop the engine's processes: embedded Redis (unless REDIS_URL), webhooks, flow, API."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from config import Settings
from nextbest.redis_server import RedisServer, die_with_parent, free_port, listen_ports

ALL_ROLES = ["admin", "ingest", "decide", "agent", "sales"]


class Engine:
    """The running engine. A context manager; `settings` is complete once started."""

    def __init__(self, settings: Settings, api: bool = True, flow: bool = True,
                 quiet: bool = True, webhooks: bool | None = None) -> None:
        self.settings = settings
        self.want_api, self.want_flow, self.quiet = api, flow, quiet
        self.want_webhooks = (api and flow) if webhooks is None else webhooks
        self.redis: RedisServer | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.admin_key: str | None = None

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.api_port}"  # IPv6

    def start(self) -> Engine:
        try:
            return self._start()
        except BaseException:
            self.stop()  # never leave Redis or the flow behind when something fails to start
            raise

    def _start(self) -> Engine:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        if self.want_flow or not s.redis_url:  # the folder's flow snapshots or Redis: one owner
            self._lock = hold(s.data_dir)
        if not s.redis_url:
            port = int(os.environ.get("NEXTBEST_REDIS_PORT", 0)) or free_port()
            self.redis = RedisServer(s.data_dir / "redis", port=port, appendfsync=s.redis_fsync,
                                     tied=True).start()
            s.redis_url = self.redis.url
            (s.data_dir / "redis.url").write_text(s.redis_url)
        if not s.api_keys:
            self.admin_key = "nb-" + secrets.token_urlsafe(18)
            s.api_keys = {self.admin_key: ALL_ROLES}
        s.secret()  # create the model-signing secret before the children read it
        if self.want_webhooks:  # before the flow: its consumer group then sees the first alert
            self._spawn("webhooks", ["-m", "nextbest.webhooks"])
        if self.want_flow:
            self.start_flow()
        if self.want_api:
            self.start_api()
        return self

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **self.settings.env(), **(extra_env or {})}
        log = open(self.settings.data_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log if self.quiet else None,
            stderr=subprocess.STDOUT if self.quiet else None, start_new_session=True,
            preexec_fn=die_with_parent)  # none outlives a `nextbest up` killed outright

    def start_flow(self, name: str = "flow", extra: list[str] | None = None) -> None:
        """The flow; with `flow_processes` > 1, a bytewax cluster of that many local processes
        (each with `flow_workers` workers), named `flow`, `flow1`, ..."""
        n = self.settings.flow_processes
        if n <= 1 or extra:
            self._spawn(name, ["-m", "nextbest.flowrun", *(extra or [])])
            return
        addresses = ";".join(f"127.0.0.1:{p}" for p in listen_ports(n))
        for i in range(n):
            self._spawn(name + (str(i) if i else ""),
                        ["-m", "nextbest.flowrun", "-i", str(i), "-a", addresses])

    def start_api(self) -> None:
        s = self.settings
        extra = {}
        if s.api_workers > 1:  # prometheus-client aggregates the workers through files
            prom = s.data_dir / "prometheus"
            shutil.rmtree(prom, ignore_errors=True)
            prom.mkdir(parents=True)
            extra["PROMETHEUS_MULTIPROC_DIR"] = str(prom.resolve())
        args = ["-m", "uvicorn", "--factory", "api.app:app_from_env", "--host", s.api_host,
                "--port", str(s.api_port), "--workers", str(s.api_workers), "--loop", "uvloop",
                "--http", "api.protocol:OneWrite", "--no-access-log", "--log-level", "warning"]
        self._spawn("api", args, extra)
        self.wait_api()

    def wait_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs.get("api")
            if proc and proc.poll() is not None:
                log = (self.settings.data_dir / "api.log").read_text()[-2000:]
                raise RuntimeError(f"the API exited with {proc.returncode}:\n{log}")
            try:
                if httpx.get(self.api_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the API did not answer on {self.api_url} within {timeout}s")

    def stop(self) -> None:
        """Every child asked to stop at once, then waited for together: stopped one after the
        other, each allowed its 10 s, a shutdown could take the sum."""
        self._stop_all()
        if self.redis:
            self.redis.stop()
            (self.settings.data_dir / "redis.url").unlink(missing_ok=True)
        if lock := getattr(self, "_lock", None):
            lock.close()  # the folder's lock goes with it
            self._lock = None

    def _stop_all(self, timeout: float = 10.0) -> None:
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in procs.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"nextbest: {name} did not stop within {timeout:.0f}s of SIGTERM; killed",
                      file=sys.stderr, flush=True)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FolderInUse(RuntimeError):
    """Another engine runs with this data folder."""


def hold(folder: Path) -> Any:
    """An exclusive lock on the data folder for this process's life (released when the
    returned file is closed, or the process ends). Two engines on one folder wrote one Redis
    file and one set of flow snapshots, and left the folder unable to start again."""
    import fcntl

    lock = open(folder / "engine.lock", "a+")  # noqa: SIM115 - held open while running
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        who = lock.read().strip() or "?"
        lock.close()
        raise FolderInUse(f"another nextbest (pid {who}) runs with the data folder {folder}: "
                          "stop it, or give this one its own NEXTBEST_DATA_DIR") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def running_redis(settings: Settings) -> str | None:
    """The Redis of an engine already running from this data folder, if any answers."""
    import redis

    path = settings.data_dir / "redis.url"
    if not path.exists():
        return None
    url = path.read_text().strip()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
        return url
    except redis.RedisError:
        return None
