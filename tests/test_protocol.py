"""The API's HTTP protocol (api/protocol.py) sends a response's head and body in one write:
through a real uvicorn, each response arrives whole in the first read, and a response to a
request that closes the connection is complete before the close."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from config import Settings
from nextbest.engine import Engine
from nextbest.redis_server import free_port
from tests.conftest import ALL, KEY


@pytest.fixture(scope="module")
def address(redis_server, tmp_path_factory) -> Iterator[tuple[str, int]]:
    s = Settings(redis_url=redis_server.url, data_dir=tmp_path_factory.mktemp("proto"),
                 api_port=free_port(), api_keys={KEY: ALL}, model_secret="x")
    with Engine(s, flow=False) as engine:
        url = urlparse(engine.api_url)
        yield str(url.hostname), int(url.port or 80)


def _request(path: str, close: bool = False, body: bytes = b"") -> bytes:
    head = [f"{'POST' if body else 'GET'} {path} HTTP/1.1", "Host: t",
            f"Connection: {'close' if close else 'keep-alive'}", f"Content-Length: {len(body)}",
            "Content-Type: application/json", f"Authorization: Bearer {KEY}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return bool(sep) and len(body) == length


def test_each_response_arrives_whole_in_the_first_read(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(40):  # with two writes, the first read returned the head alone
            path, body = (("/healthz", b"") if i % 2 else
                          ("/v1/decisions", b'{"customer_id": "p1", "channel": "web"}'))
            sock.sendall(_request(path, body=body))
            first = sock.recv(1 << 16)
            assert _complete(first), first[:200]


def test_a_closing_request_gets_its_whole_response_before_the_close(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(_request("/healthz", close=True))
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and _complete(data)
