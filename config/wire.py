"""Commands to one Redis packed by `hiredis.pack_command` and replies parsed by `hiredis.Reader`,
without redis-py's per-command layers; what the API's asyncio wire (api/wire.py) and the flow's
blocking one (`SyncWire`, the stream reads and the sink's batches) share.

Measured here (a loop of 20,000 calls, process CPU): an empty XREAD cost ~75 us through
redis-py 8 and ~32 us this way; a pipeline of 10 SETs ~150-170 us against ~40-45 us. The flow
makes one read per partition every 20 ms and one pipeline per batch, so at 2,000 events/s
beside 1,000 decisions/s that per-call cost was ~15% of its CPU (py-spy).

One Redis server over TCP or a Unix socket (`usable`); on a Redis Cluster or over TLS callers
keep redis-py, which routes by slot and holds the TLS options.
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as Lost
from redis.exceptions import TimeoutError as Slow

Commands = list[tuple[tuple[Any, ...], dict[str, Any]]]
_CALLBACKS = aioredis.Redis(protocol=2).response_callbacks  # RESP2 shapes, as redis-py returns


class ReplyError(str):
    """An error reply, as hiredis hands it over (turned into redis-py's class per command)."""


def usable(client: Any) -> bool:
    """A client of one Redis, not over TLS (its pool's connection class says)."""
    pool = getattr(client, "connection_pool", None)
    return pool is not None and "SSL" not in pool.connection_class.__name__


def pack(commands: Commands) -> bytes:
    return b"".join(hiredis.pack_command(args) for args, _ in commands)


def hello(options: dict[str, Any]) -> Commands:
    """AUTH and SELECT for a new connection, from the client's URL options."""
    out: Commands = []
    if options.get("password"):
        auth = (options["username"], options["password"]) if options.get("username") \
            else (options["password"],)
        out.append((("AUTH", *auth), {}))
    if options.get("db"):
        out.append((("SELECT", options["db"]), {}))
    return out


def parse(reply: Any, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """What redis-py's pipeline would return for this reply (`Redis.parse_response`)."""
    options = {k: v for k, v in options.items() if k != "keys"}
    if isinstance(reply, ReplyError):
        if "EMPTY_RESPONSE" in options:
            return options["EMPTY_RESPONSE"]
        return BaseParser.parse_error(str(reply))  # NoScriptError, BusyLoadingError, ...
    options.pop("EMPTY_RESPONSE", None)
    options.pop("NEVER_DECODE", None)
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    callback = _CALLBACKS.get(name.upper())
    return callback(reply, **options) if callback is not None else reply


class SyncWire:
    """A blocking connection: `execute(commands)` sends them in one write and returns the
    replies in order, as Redis sent them (`parse` shapes one as redis-py would); the first error
    reply is raised (as a redis-py pipeline does) after every reply was read. A socket error or
    a reply slower than `timeout` drops the connection and raises redis-py's `ConnectionError`
    or `TimeoutError`; the next call connects again."""

    def __init__(self, client: Any, timeout: float = 10.0) -> None:
        self.options = client.connection_pool.connection_kwargs
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)

    def execute(self, commands: Commands) -> list[Any]:
        try:
            sock = self.sock or self._connect()
            sock.sendall(pack(commands))
            replies = self._read(sock, len(commands))
        except Slow:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise Lost(f"connection to Redis lost: {exc}") from exc
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise BaseParser.parse_error(str(reply))  # NoScriptError, ...
        return replies

    def _read(self, sock: socket.socket, count: int) -> list[Any]:
        replies: list[Any] = []
        while len(replies) < count:
            reply = self.reader.gets()
            if reply is not False:
                replies.append(reply)
                continue
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:  # the socket's
                raise Slow(f"no reply from Redis within {self.timeout} s") from None
            if not data:
                raise OSError("closed by the server")
            self.reader.feed(data)
        return replies

    def _connect(self) -> socket.socket:
        o = self.options
        if o.get("path"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(o["path"])
        else:
            sock = socket.create_connection((o.get("host", "localhost"), o.get("port", 6379)),
                                            timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.reader = sock, hiredis.Reader(replyError=ReplyError)
        if commands := hello(o):
            sock.sendall(pack(commands))
            for reply in self._read(sock, len(commands)):
                if isinstance(reply, ReplyError):
                    self.close()
                    raise Lost(f"Redis refused the connection: {reply}")
        return sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
