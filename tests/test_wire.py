"""The hiredis wires, against real Redis servers: the batcher's (api/wire.py) and the flow's
blocking one (config/wire.py). The same replies as a redis-py pipeline, many round trips in
flight on one socket each answered with its own, password and database selection, a timeout
that fails its round trip, and a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.wire import Wire
from config.wire import SyncWire, parse
from nextbest.redis_server import RedisServer

COMMANDS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("SET", "w:s", 1.5), {}), (("GET", "w:s"), {}), (("GET", "w:none"), {}),
    (("HSET", "w:h", "a", 1, "b", b"\x00\xff"), {}), (("HGETALL", "w:h"), {}),
    (("HGETALL", "w:empty"), {}), (("ZADD", "w:z", 3, "m"), {}),
    (("ZRANGE", "w:z", 0, -1, "WITHSCORES"), {"withscores": True}),
    (("EXPIRE", "w:z", 60), {}), (("INCR", "w:n"), {}), (("XADD", "w:x", "*", "e", "{}"), {}),
    (("EVALSHA", "0" * 40, 0), {}), (("INCR", "w:h"), {}), (("SET", "w:s", "x", "NX"), {}),
]


def _shape(reply: Any) -> Any:
    if isinstance(reply, Exception):
        return type(reply).__name__
    if isinstance(reply, bytes) and reply[:1].isdigit() and b"-" in reply:
        return "stream id"
    return reply


def test_replies_are_what_a_redis_py_pipeline_returns(redis_url: str, r: redis.Redis) -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            r.flushdb()
            ours = await Wire(client, 2.0).execute(COMMANDS)
            r.flushdb()
            pipe = client.pipeline(transaction=False)
            for args, options in COMMANDS:
                pipe.execute_command(*args, **options)
            return ours, await pipe.execute(raise_on_error=False)
        finally:
            await client.aclose()

    ours, theirs = asyncio.run(main())
    assert [_shape(x) for x in ours] == [_shape(x) for x in theirs]
    assert isinstance(ours[11], NoScriptError) and isinstance(ours[12], ResponseError)
    assert ours[4] == {b"a": b"1", b"b": b"\x00\xff"} and ours[7] == [(b"m", 3.0)]


def test_round_trips_in_flight_together_each_get_their_own_replies(redis_url: str) -> None:
    async def main() -> list[list[Any]]:
        client = aioredis.Redis.from_url(redis_url)
        wire = Wire(client, 2.0)
        try:
            return list(await asyncio.gather(*[
                wire.execute([(("SET", f"w:k{i}", i), {}), (("GET", f"w:k{i}"), {})] * (1 + i % 3))
                for i in range(300)]))
        finally:
            await client.aclose()

    for i, replies in enumerate(asyncio.run(main())):
        assert replies == [True, str(i).encode()] * (1 + i % 3)


def test_password_and_database_from_the_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "r", extra=["--requirepass", "pw-wire"]) as server:
        url = f"redis://:pw-wire@127.0.0.1:{server.port}/3"

        async def main() -> list[Any]:
            client = aioredis.Redis.from_url(url)
            try:
                return await Wire(client, 2.0).execute([(("SET", "w:db", "three"), {})])
            finally:
                await client.aclose()

        assert asyncio.run(main()) == [True]
        assert redis.Redis.from_url(url).get("w:db") == b"three"
        assert redis.Redis.from_url(url.removesuffix("/3") + "/0").get("w:db") is None


def test_a_timeout_fails_that_round_trip_and_the_next_one_reconnects(redis_url: str) -> None:
    async def main() -> tuple[BaseException, list[Any]]:
        client = aioredis.Redis.from_url(redis_url)
        wire = Wire(client, 0.2)
        try:
            with pytest.raises(RedisTimeoutError) as slow:
                await wire.execute([(("BLPOP", "w:never", 2), {})])  # the server holds it 2 s
            return slow.value, await wire.execute([(("PING",), {})])
        finally:
            await client.aclose()

    err, after = asyncio.run(main())
    assert "0.2 s" in str(err) and after == [True]


def test_requests_fail_fast_while_redis_is_down_and_reconnect_after_a_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()

    async def main() -> tuple[list[Any], list[Any]]:
        client = aioredis.Redis.from_url(server.url)
        wire = Wire(client, 1.0)
        try:
            assert await wire.execute([(("SET", "w:a", 1), {})]) == [True]
            server.stop()
            down = [await _outcome(wire) for _ in range(3)]
            server.start()
            return down, [await _outcome(wire) for _ in range(3)]
        finally:
            await client.aclose()

    try:
        down, up = asyncio.run(main())
    finally:
        server.stop()
    assert down == ["ConnectionError"] * 3 and up == [[b"1"]] * 3


async def _outcome(wire: Wire) -> Any:
    try:
        return await wire.execute([(("GET", "w:a"), {})])
    except RedisConnectionError as exc:
        return type(exc).__name__


# the flow's blocking wire (config/wire.py): stream reads and the sink's batches

def test_the_blocking_wire_returns_what_redis_py_does_and_raises_the_first_error(
        redis_url: str, r: redis.Redis) -> None:
    good = [c for c in COMMANDS if c[0][0] != "EVALSHA" and c[0] != ("INCR", "w:h")]  # no errors
    r.flushdb()
    wire = SyncWire(r)
    ours = [parse(reply, args, options) for reply, (args, options) in zip(wire.execute(good), good)]
    r.flushdb()
    pipe = r.pipeline(transaction=False)
    for args, options in good:
        pipe.execute_command(*args, **options)
    assert [_shape(x) for x in ours] == [_shape(x) for x in pipe.execute()]
    with pytest.raises(NoScriptError):  # as a redis-py pipeline raises it, after every reply
        wire.execute([(("SET", "w:after", 1), {}), (("EVALSHA", "0" * 40, 0), {}),
                      (("INCR", "w:after"), {})])
    assert r.get("w:after") == b"2" and wire.execute([(("PING",), {})]) == [b"PONG"]


def test_the_blocking_wire_reads_a_stream_as_redis_sent_it(r: redis.Redis) -> None:
    ids = [r.xadd("w:stream", {"e": f"{i}", "n": i}) for i in range(3)]
    [reply] = SyncWire(r).execute([(("XREAD", "COUNT", 2, "STREAMS", "w:stream", "0-0"), {})])
    assert reply == [[b"w:stream", [[ids[0], [b"e", b"0", b"n", b"0"]],
                                    [ids[1], [b"e", b"1", b"n", b"1"]]]]]
    empty = SyncWire(r).execute([(("XREAD", "COUNT", 2, "STREAMS", "w:stream", ids[2]), {})])
    assert empty == [None]


def test_the_blocking_wire_uses_password_and_database_and_times_out(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "r", extra=["--requirepass", "pw-sync"]) as server:
        url = f"redis://:pw-sync@127.0.0.1:{server.port}/2"
        wire = SyncWire(redis.Redis.from_url(url), timeout=0.2)
        assert wire.execute([(("SET", "w:db", "two"), {})]) == [b"OK"]
        assert redis.Redis.from_url(url).get("w:db") == b"two"
        assert redis.Redis.from_url(url.removesuffix("/2") + "/0").get("w:db") is None
        with pytest.raises(RedisTimeoutError, match="0.2 s"):
            wire.execute([(("BLPOP", "w:never", 2), {})])  # the server holds it 2 s
        assert wire.execute([(("GET", "w:db"), {})]) == [b"two"]  # a new connection
        with pytest.raises(RedisConnectionError, match="refused"):
            SyncWire(redis.Redis.from_url(url.replace("pw-sync", "wrong"))).execute([(("PING",), {})])


def test_the_blocking_wire_fails_while_redis_is_down_and_reconnects_after_a_restart(
        tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r").start()
    try:
        wire = SyncWire(redis.Redis.from_url(server.url), timeout=1.0)
        assert wire.execute([(("SET", "w:a", 1), {})]) == [b"OK"]
        server.stop()
        for _ in range(2):
            with pytest.raises(RedisConnectionError):
                wire.execute([(("GET", "w:a"), {})])
        server.start()
        assert wire.execute([(("GET", "w:a"), {})]) == [b"1"]  # the append-only file kept it
    finally:
        server.stop()
