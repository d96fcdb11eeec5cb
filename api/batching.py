"""Auto-pipelining: the Redis commands of concurrent requests go out in one round trip.

A request queues its pipeline's commands and awaits its own results; the first request queued
in a turn of the event loop schedules a flush for the end of that turn, which sends everything
queued by then as one pipeline and hands each request its slice. Alone, a request costs what its
own pipeline would; under load, requests share the per-round-trip work (taking a pooled
connection, the socket write, waking the reader), which was the largest share of a decision's
CPU after the engine's own work. Each request still waits for its own writes: a decision or an
event is acknowledged only once Redis has it.

A command that fails fails only the request it came from (its first error is raised there, as
`Pipeline.execute` does); a connection error fails every request of that round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api import metrics
from api.wire import Commands, Wire
from config import connect


class Batcher:
    def __init__(self, redis: Any, max_commands: int = 1024, timeout: float = 0.25) -> None:
        self.redis = redis
        self.wire = Wire(redis, timeout) if Wire.usable(redis) else None
        self.max_commands = max_commands
        self._queue: list[tuple[Commands, asyncio.Future[list[Any]]]] = []
        self._queued = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.round_trips = 0  # for tests and metrics
        self.requests = 0

    async def execute(self, pipe: Any) -> list[Any]:
        """The results of `pipe`'s commands (a pipeline used only to queue them)."""
        commands = connect.queued(pipe)
        if not commands:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((commands, future))
        self._queued += len(commands)
        if self._queued >= self.max_commands:
            self._flush()
        return await future

    def _flush(self) -> None:
        if not self._queue:
            return
        batch, self._queue, self._queued = self._queue, [], 0
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[Commands, asyncio.Future[list[Any]]]]) -> None:
        self.round_trips += 1
        self.requests += len(batch)
        metrics.REDIS_ROUND_TRIPS.inc()
        metrics.REDIS_BATCHED.inc(len(batch))
        try:
            results = await self._round_trip([c for commands, _ in batch for c in commands])
        except BaseException as exc:  # connection lost, timeout, cancelled: all of them fail
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else
                                         ConnectionError("Redis round trip cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        at = 0
        for commands, future in batch:
            mine = results[at:at + len(commands)]
            at += len(commands)
            if future.done():  # the request was cancelled meanwhile
                continue
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(list(mine))

    async def _round_trip(self, commands: Commands) -> list[Any]:
        """The replies, errors in place: over the hiredis wire, else a redis-py pipeline."""
        if self.wire is not None:
            return await self.wire.execute(commands)
        pipe = self.redis.pipeline(transaction=False)
        for args, options in commands:
            pipe.execute_command(*args, **options)
        return list(await pipe.execute(raise_on_error=False))
