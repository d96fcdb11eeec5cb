"""An open-loop HTTP load generator: requests leave at a fixed arrival rate, and latency is
measured from each request's *scheduled* send time, so queueing anywhere is not hidden
(coordinated omission). Keep-alive HTTP/1.1 over a growing pool of connections; uvloop.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

MakeRequest = Callable[[int, random.Random], tuple[str, str, bytes | None]]


@dataclass
class Result:
    rate: float
    sent: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    late_sends: int = 0
    elapsed: float = 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000.0

    def summary(self) -> dict[str, float]:
        return {"rate": self.rate, "achieved": round(self.sent / self.elapsed, 1) if self.elapsed else 0,
                "requests": self.sent, "errors": self.errors,
                "p50_ms": round(self.pct(0.50), 3), "p90_ms": round(self.pct(0.90), 3),
                "p99_ms": round(self.pct(0.99), 3), "p999_ms": round(self.pct(0.999), 3)}


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


def _stale(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.IncompleteReadError):
        return not exc.partial
    return isinstance(exc, (ConnectionResetError, BrokenPipeError))


def _raw(host: str, port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def run(host: str, port: int, make: MakeRequest, rate: float, duration: float,
              headers: dict[str, str] | None = None, max_conns: int = 256, seed: int = 1,
              warmup: float = 1.0) -> Result:
    """Send `rate` requests/s for `duration` s (after `warmup` s not counted)."""
    rng = random.Random(seed)
    headers = headers or {}
    idle: list[_Conn] = []
    opened = 0
    result = Result(rate)
    total = int(rate * (duration + warmup))
    counted_from = int(rate * warmup)
    tasks: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(max_conns)

    async def one(i: int, scheduled: float, raw: bytes) -> None:
        nonlocal opened
        async with slots:
            conn = idle.pop() if idle else None
            for attempt in (0, 1):
                reused = conn is not None
                try:
                    if conn is None:
                        opened += 1
                        conn = _Conn(*await asyncio.open_connection(host, port))
                    status = await conn.request(raw)
                    idle.append(conn)
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    status = 0
                    if conn is not None:
                        conn.writer.close()
                    conn = None
                    # a kept-alive connection the server closed while it sat idle (uvicorn
                    # after 5 s) fails before any answer: retried once on a new connection,
                    # as HTTP clients do; the time it costs still counts
                    if not (attempt == 0 and reused and _stale(exc)):
                        break
        if i >= counted_from:
            result.sent += 1
            result.latencies.append(time.perf_counter() - scheduled)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if not 200 <= status < 300:
                result.errors += 1

    loop_start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = loop_start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            result.late_sends += 1
        method, path, body = make(i, rng)
        task = asyncio.create_task(one(i, scheduled, _raw(host, port, method, path, body, headers)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    result.elapsed = duration
    for conn in idle:
        conn.writer.close()
    return result


def run_sync(*args: object, **kw: object) -> Result:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(run(*args, **kw))  # type: ignore[arg-type]


def json_body(obj: object) -> bytes:
    return orjson.dumps(obj)
