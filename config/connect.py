"""Clients for the configured Redis: one server, or a Redis Cluster.

`REDIS_URL=redis://host:6379/0` (or `rediss://`) is one Redis. `redis+cluster://host:7000`
(`rediss+cluster://` with TLS), or a plain URL with `NEXTBEST_REDIS_CLUSTER=true`, is a Redis
Cluster reached through any of its nodes; the client discovers the others and routes each
command by its key's slot. The key layout (`engine/store.py`) keeps what must be together in
one slot, so the code is the same for both; two things differ in cluster pipelines, handled
here: EVALSHA is sent as a raw command (redis-py blocks the method there) and PUBLISH is sent
outside the pipeline.

>>> is_cluster("redis+cluster://10.0.0.1:7000"), plain("rediss+cluster://h:7000")
(True, 'rediss://h:7000')
>>> as_cluster("redis://h:7000/0")
'redis+cluster://h:7000/0'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

Sync = redis.Redis | redis.RedisCluster
Async = aioredis.Redis | aioredis.RedisCluster


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].endswith("+cluster")


def plain(url: str) -> str:
    """The URL redis-py understands (without `+cluster`)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.removesuffix('+cluster')}://{rest}"


def as_cluster(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return url if scheme.endswith("+cluster") else f"{scheme}+cluster://{rest}"


def client(url: str, **kw: Any) -> Sync:
    """A synchronous client for `url` (a `RedisCluster` for a cluster URL)."""
    if is_cluster(url):
        return redis.RedisCluster.from_url(plain(url), **kw)
    return redis.Redis.from_url(url, **kw)


def async_client(url: str, max_connections: int | None = None, timeout: float | None = None,
                 **kw: Any) -> Async:
    """An asyncio client. On one Redis, `max_connections` bounds a pool that waits up to
    `timeout` for a free connection (big pools showed 40-80 ms tails here); on a cluster it
    bounds each node's pool."""
    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout} if timeout else {}
    if is_cluster(url):
        nodes = {"max_connections": max(max_connections, 32)} if max_connections else {}
        return aioredis.RedisCluster.from_url(plain(url), **nodes, **timeouts, **kw)
    # a pooled connection that went stale (Redis restarted) is retried once on a new one,
    # rather than failing one request per stale connection; timeouts are not retried
    kw = {"retry_on_error": [redis.exceptions.ConnectionError], "retry": Retry(NoBackoff(), 1), **kw}
    if max_connections is None:
        return aioredis.from_url(url, **timeouts, **kw)
    # waiting for a free connection is queueing under a burst, not a failure: wait up to 2 s
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=max(2.0, timeout or 0.0), **timeouts, **kw)
    return aioredis.Redis(connection_pool=pool)


def evalsha(pipe: Any, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """Queue a script call on a pipeline of either kind (the caller loads the script and
    reloads it on `NoScriptError`)."""
    return pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)


def queued(pipe: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The commands queued on a pipeline of either kind, as (args, options), to replay them."""
    if hasattr(pipe, "command_stack"):
        return [(args, options) for args, options in pipe.command_stack]
    return [(c.args, c.kwargs) for c in pipe._execution_strategy._command_queue]  # asyncio cluster


def redacted(url: str) -> str:
    """A Redis URL as it may be shown: without its password.

    >>> redacted("redis://:s3cret@10.0.0.5:6379/0"), redacted("redis://127.0.0.1:6379/0")
    ('redis://:***@10.0.0.5:6379/0', 'redis://127.0.0.1:6379/0')
    """
    import re

    return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", url)
