"""The hiredis wire under the batcher (api/wire.py), against real Redis servers: the same replies
as a redis-py pipeline, many round trips in flight on one socket each answered with its own,
password and database selection, a timeout that fails its round trip, and a restart."""

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
