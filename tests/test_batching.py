"""Auto-pipelining (api/batching.py) against the real Redis: concurrent requests share round
trips, each gets exactly its own results, and an error stays with the request it belongs to."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.batching import Batcher
from config import connect
from nextbest.redis_server import free_port


async def one(batcher: Batcher, client: aioredis.Redis, i: int) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    pipe.set(f"k{i}", i)
    pipe.incrby(f"n{i % 3}", i)
    pipe.get(f"k{i}")
    pipe.hset(f"h{i}", mapping={"a": i})
    pipe.hgetall(f"h{i}")
    return await batcher.execute(pipe)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_share_round_trips_and_get_their_own_results(redis_url: str) -> None:
    async def main() -> tuple[list[list[Any]], Batcher]:
        client = connect.async_client(redis_url, max_connections=4)
        batcher = Batcher(client)
        try:
            return list(await asyncio.gather(*[one(batcher, client, i) for i in range(60)])), batcher
        finally:
            await client.aclose()

    results, batcher = run(main())
    for i, (ok, _, value, added, fields) in enumerate(results):
        assert ok is True and value == str(i).encode() and added == 1
        assert fields == {b"a": str(i).encode()}
    assert max(r[1] for r in results) == sum(range(2, 60, 3))  # n2's total once all are in
    assert batcher.requests == 60 and batcher.round_trips < 5


def test_a_lone_request_goes_at_once(redis_url: str) -> None:
    async def main() -> tuple[list[Any], Batcher]:
        client = connect.async_client(redis_url, max_connections=4)
        batcher = Batcher(client)
        try:
            return await one(batcher, client, 7), batcher
        finally:
            await client.aclose()

    result, batcher = run(main())
    assert result[2] == b"7" and batcher.round_trips == 1


def test_an_error_fails_only_its_own_request(redis_url: str) -> None:
    async def bad(batcher: Batcher, client: aioredis.Redis) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.set("text", "not a number")
        pipe.incr("text")  # WRONGTYPE-ish: not an integer
        return await batcher.execute(pipe)

    async def main() -> list[Any]:
        client = connect.async_client(redis_url, max_connections=4)
        batcher = Batcher(client)
        try:
            return list(await asyncio.gather(one(batcher, client, 1), bad(batcher, client),
                                             one(batcher, client, 2), return_exceptions=True))
        finally:
            await client.aclose()

    first, error, second = run(main())
    assert isinstance(error, ResponseError) and "not an integer" in str(error)
    assert first[2] == b"1" and second[2] == b"2"


def test_a_lost_connection_fails_every_request_of_the_round_trip() -> None:
    async def main() -> list[Any]:
        client = connect.async_client(f"redis://127.0.0.1:{free_port()}/0", max_connections=2,
                                      timeout=0.5)
        batcher = Batcher(client)
        try:
            return list(await asyncio.gather(*[one(batcher, client, i) for i in range(5)],
                                             return_exceptions=True))
        finally:
            await client.aclose()

    results = run(main())
    assert len(results) == 5
    assert all(isinstance(r, (RedisConnectionError, RedisTimeoutError)) for r in results), results
