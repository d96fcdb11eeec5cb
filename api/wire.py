"""One pipelined Redis connection for the batcher (api/batching.py), parsed by hiredis.

Each round trip of the batcher is one `write` of commands packed by `hiredis.pack_command`; the
replies are parsed by a `hiredis.Reader` as bytes arrive and handed back in order, so several
round trips can be in flight on the one socket (Redis answers a connection in order). Measured
once here, in a loop of 5,000 round trips of four commands: redis-py's asyncio pipeline spent
~140 us of CPU per round trip (a pooled connection, packing in Python, a timeout context per
reply), this ~45 us; a decision makes two. Replies get redis-py's own RESP2 response callbacks
and error classes, so callers see what a redis-py pipeline returns (a dict for HGETALL,
`NoScriptError`, ...).

One Redis server over TCP or a Unix socket (`usable`): on a Redis Cluster, or over TLS, the
batcher keeps redis-py, which routes by slot and holds the TLS options. A
round trip that takes longer than `timeout` fails with `TimeoutError` and drops the connection
(its replies could no longer be matched); a lost connection fails what was in flight with
`ConnectionError`; the next round trip connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis.exceptions import ConnectionError, TimeoutError

from config.wire import Commands, ReplyError, pack, parse
from config.wire import hello as wire_hello
from config.wire import usable as one_server

__all__ = ["Commands", "Wire"]


class _Wire(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                future, count, got = self.waiting[0]
                got.append(reply)
                if len(got) == count:
                    self.waiting.popleft()
                    if not future.done():
                        future.set_result(got)
        except Exception as exc:  # noqa: BLE001 - a protocol error: nothing after it can be matched
            self.fail(ConnectionError(f"unreadable reply from Redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, exc: Exception) -> None:
        self.lost = self.lost or exc
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def send(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.waiting.append((future, count, []))
        assert self.transport is not None
        self.transport.write(packed)
        return future


class Wire:
    """`execute(commands)` -> their replies, in order (errors in place, as exceptions)."""

    usable = staticmethod(one_server)

    def __init__(self, redis: Any, timeout: float) -> None:
        self.options = redis.connection_pool.connection_kwargs
        self.timeout = timeout
        self._wire: _Wire | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, commands: Commands) -> list[Any]:
        wire = await self._connected()
        future = wire.send(pack(commands), len(commands))
        expire = asyncio.get_running_loop().call_later(self.timeout, self._expired, wire)
        try:
            replies = await future
        finally:
            expire.cancel()
        return [parse(reply, args, options) for reply, (args, options) in zip(replies, commands)]

    def _expired(self, wire: _Wire) -> None:
        # the error is made only when it happens (building one per round trip cost ~1% of CPU)
        wire.fail(TimeoutError(f"no reply from Redis within {self.timeout} s"))

    async def _connected(self) -> _Wire:
        if self._wire is not None and self._wire.lost is None:
            return self._wire
        async with self._connecting:
            if self._wire is None or self._wire.lost is not None:
                self._wire = await asyncio.wait_for(self._connect(), self.timeout)
            return self._wire

    async def _connect(self) -> _Wire:
        o, loop = self.options, asyncio.get_running_loop()
        try:
            if o.get("path"):
                _, wire = await loop.create_unix_connection(_Wire, o["path"])
            else:
                _, wire = await loop.create_connection(_Wire, o.get("host", "localhost"),
                                                       o.get("port", 6379))
        except OSError as exc:
            raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
        if hello := wire_hello(o):
            for reply in await wire.send(pack(hello), len(hello)):
                if isinstance(reply, ReplyError):
                    wire.fail(ConnectionError(f"Redis refused the connection: {reply}"))
                    raise ConnectionError(f"Redis refused the connection: {reply}")
        return wire

