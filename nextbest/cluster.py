"""A local Redis Cluster of real redis-server processes, for tests and trying things out.

Each node is a `RedisServer` started with `--cluster-enabled yes`; the slots are split evenly
and the nodes introduced to each other with CLUSTER ADDSLOTS / CLUSTER MEET (what
`redis-cli --cluster create` does, without needing redis-cli). No replicas: this is for
exercising the client side (hash tags, slot routing, pipelines across nodes), not failover.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Self

import redis

from nextbest.redis_server import RedisServer, port_free

SLOTS = 16384
BUS_OFFSET = 10000  # Redis 6.2 puts the cluster bus on port + 10000


def cluster_ports(n: int, start: int = 30000) -> list[int]:
    """`n` ports whose cluster-bus ports (port + 10000) are free too."""
    ports: list[int] = []
    port = start
    while len(ports) < n and port + BUS_OFFSET < 65536:
        if port_free(port) and port_free(port + BUS_OFFSET):
            ports.append(port)
        port += 1
    if len(ports) < n:
        raise RuntimeError(f"found only {len(ports)} free port pairs for a Redis Cluster")
    return ports


class LocalCluster:
    """`nodes` primaries on 127.0.0.1, data under `data_dir`. A context manager; `url` is the
    `redis+cluster://` URL of the first node (clients discover the others)."""

    def __init__(self, data_dir: Path, nodes: int = 3, start_port: int = 30000) -> None:
        self.data_dir = Path(data_dir)
        self.ports = cluster_ports(nodes, start_port)
        self.servers = [
            RedisServer(self.data_dir / f"node{p}", port=p, extra=[
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{p}.conf",
                "--cluster-node-timeout", "5000"])
            for p in self.ports]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 30.0) -> Self:
        for server in self.servers:
            server.start()
        clients = [redis.Redis(port=p) for p in self.ports]
        n = len(self.ports)
        for i, c in enumerate(clients):
            lo, hi = i * SLOTS // n, (i + 1) * SLOTS // n
            c.execute_command("CLUSTER ADDSLOTS", *range(lo, hi))
        for p in self.ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", p)
        deadline = time.monotonic() + timeout
        while not all(self._ok(c, n) for c in clients):
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    @staticmethod
    def _ok(c: redis.Redis, n: int) -> bool:
        info = c.cluster("info")
        return bool(info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == n)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
