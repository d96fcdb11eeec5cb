"""The lean path (api/lean.py) answers decisions and events exactly as the FastAPI routes do:
the same statuses, error codes and response shapes for good, bad and hostile requests, the same
role checks; and it is what serves them by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import Settings
from tests.conftest import KEY, ROLE_KEYS, ev

INGEST_ONLY = next(k for k, roles in ROLE_KEYS.items() if roles == ["ingest"])
TS = 1_767_225_600.0
REQUESTS: list[tuple[str, Any, str | None]] = [  # path, body (bytes or JSON), key
    ("/v1/decisions", {"customer_id": "c1", "channel": "web", "context": {"page": "home"}}, KEY),
    ("/v1/decisions", {"anonymous_id": "a1", "limit": 3}, KEY),
    ("/v1/decisions", {"customer_id": "c1", "offers": ["nope"]}, KEY),
    ("/v1/decisions", {}, KEY),
    ("/v1/decisions", {"customer_id": ""}, KEY),
    ("/v1/decisions", {"customer_id": "c1", "limit": 0}, KEY),
    ("/v1/decisions", {"customer_id": "c1", "limit": "many"}, KEY),
    ("/v1/decisions", {"customer_id": "c1", "context": {str(i): i for i in range(51)}}, KEY),
    ("/v1/decisions", [1, 2], KEY),
    ("/v1/decisions", b"not json", KEY),
    ("/v1/decisions", b"", KEY),
    ("/v1/decisions", b'{"customer_id": "c1", "context": {"\\ud800": 1}}', KEY),
    ("/v1/decisions", {"customer_id": "c1"}, None),
    ("/v1/decisions", {"customer_id": "c1"}, "wrong"),
    ("/v1/decisions", {"customer_id": "c1"}, INGEST_ONLY),
    ("/v1/events", ev("e1", "click", TS), KEY),
    ("/v1/events", [ev("e2", "click", TS), {"type": "click"}, ev("e1", "click", TS)], KEY),
    ("/v1/events", [ev(f"m{i}", "click", TS) for i in range(1001)], KEY),
    ("/v1/events", b"{broken", KEY),
    ("/v1/events", ev("e3", "click", TS), None),
    ("/v1/events", ev("e3", "click", TS), INGEST_ONLY),
]


def _client(settings: Settings, lean: bool) -> Iterator[TestClient]:
    from api.app import create_app

    with TestClient(create_app(settings.model_copy(update={"lean_routes": lean}))) as client:
        yield client


def _send(client: TestClient, path: str, body: Any, key: str | None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    content = body if isinstance(body, bytes) else None
    res = client.post(path, content=content, json=None if content is not None else body, headers=headers)
    return res.status_code, res.json()


def _shape(status: int, body: Any) -> Any:
    """What must match: errors by code, answers by their fields (ids and draws differ)."""
    if "error" in body:
        return status, body["error"]["code"], bool(body["error"]["message"])
    if "decision_id" in body:
        return status, sorted(body), len(body["offers"]), body["customer_id"]
    return status, body


@pytest.fixture
def both(settings: Settings, r: Any) -> Iterator[tuple[TestClient, TestClient]]:
    for full in _client(settings, lean=False):
        for lean in _client(settings, lean=True):
            yield full, lean


def test_lean_and_fastapi_routes_answer_alike(both: tuple[TestClient, TestClient], r: Any) -> None:
    full, lean = both
    for path, body, key in REQUESTS:
        r.flushdb()  # each side sees the same store: duplicates and all
        a = _shape(*_send(full, path, body, key))
        r.flushdb()
        b = _shape(*_send(lean, path, body, key))
        assert a == b, (path, body if not isinstance(body, bytes) else body[:60], a, b)
    # too deep to parse: FastAPI answers 400 "error parsing the body", the lean path 422 with
    # the parser's reason (tests/test_hostile_input.py holds both paths to a 4xx)
    statuses = {_send(lean, p, b, k)[0] for p, b, k in REQUESTS}
    assert {200, 202, 400, 401, 403, 413, 422} <= statuses  # the list covers every answer


def test_the_lean_path_serves_by_default_without_fastapi_dependencies(
        api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import fastapi.routing

    solved: list[int] = []
    real = fastapi.routing.solve_dependencies

    async def counted(*args: Any, **kw: Any) -> Any:
        solved.append(1)
        return await real(*args, **kw)

    before = _served(api)
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    assert api.post("/v1/decisions", json={"customer_id": "c1"}).status_code == 200
    assert api.post("/v1/events", json=ev("l1", "click", TS)).status_code == 202
    assert solved == []
    assert api.get("/v1/customers/c1").status_code in (200, 404) and solved  # others: FastAPI
    assert _served(api) == before + 1  # timed under the route's name, as FastAPI's are


def _served(api: TestClient) -> float:
    line = 'nextbest_request_seconds_count{route="/v1/decisions",status="200"} '
    text = api.get("/metrics").text
    return next((float(x[len(line):]) for x in text.splitlines() if x.startswith(line)), 0.0)
