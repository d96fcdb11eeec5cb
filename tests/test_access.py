"""Nobody let in: every endpoint checks its role; keys are held hashed; rate limits; Redis auth."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import KeyRing, digest
from config import Settings
from nextbest.redis_server import RedisServer
from tests.conftest import ALL, KEY, ROLE_KEYS

ROLES = ["ingest", "decide", "agent", "sales", "admin"]
ENDPOINTS = [  # method, path, body, role the contract requires
    ("POST", "/v1/events", {"event_id": "e", "type": "click", "ts": 1, "customer_id": "c"}, "ingest"),
    ("POST", "/v1/decisions", {"customer_id": "c"}, "decide"),
    ("POST", "/v1/decisions/d1/feedback", {"offer_id": "o", "outcome": "accepted"}, "decide"),
    ("GET", "/v1/customers/c/next-best-action", None, "agent"),
    ("GET", "/v1/customers/c", None, "agent"),
    ("DELETE", "/v1/customers/c", None, "admin"),
    ("GET", "/v1/alerts", None, "sales"),
    ("POST", "/v1/alerts/a1/ack", None, "sales"),
    ("GET", "/v1/offers", None, "agent"),
    ("GET", "/v1/offers/gold_card/performance", None, "agent"),
    ("GET", "/v1/models", None, "admin"),
    ("GET", "/v1/status", None, "admin"),
]


def key_for(role: str) -> str:
    return next(k for k, roles in ROLE_KEYS.items() if roles == [role])


@pytest.mark.parametrize("method, path, body, needed", ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_checks_its_role(api: TestClient, method: str, path: str, body: dict | None,
                                        needed: str) -> None:
    anon = api.request(method, path, json=body, headers={"Authorization": ""})
    assert anon.status_code == 401 and anon.json()["error"]["code"] == "unauthorized"
    wrong = api.request(method, path, json=body, headers={"Authorization": "Bearer not-a-key-at-all"})
    assert wrong.status_code == 401
    for role in ROLES:
        res = api.request(method, path, json=body, headers={"Authorization": f"Bearer {key_for(role)}"})
        if role == needed:
            assert res.status_code not in (401, 403), (role, res.text)
        else:
            assert res.status_code == 403, (role, res.status_code, res.text)
            assert needed in res.json()["error"]["message"]


def test_open_endpoints_need_no_key(api: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert api.get(path, headers={"Authorization": ""}).status_code in (200, 503)


def test_keys_are_held_only_as_digests(api: TestClient) -> None:
    ring = api.app.state.nb.keys
    held = repr(vars(ring))
    assert KEY not in held and all(k not in held for k in ROLE_KEYS)


def test_rate_limit_per_key(settings: Settings) -> None:
    settings.rate_limit_per_s = 5
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY}"}) as c:
        codes = [c.get("/v1/offers").status_code for _ in range(30)]
    assert codes.count(429) >= 15 and codes[0] == 200


def test_short_keys_are_served_with_a_warning_and_unknown_roles_refused(
        caplog: pytest.LogCaptureFixture) -> None:
    """CONTRACT.md's own example key, `k-admin`, is 7 characters: served, with a warning that
    names the key by its digest, never the key itself."""
    ring = KeyRing(Settings(api_keys={"k-admin": ["admin"], KEY: ["agent"]}).api_keys)
    assert ring.check("Bearer k-admin", "admin") and ring.check(f"Bearer {KEY}", "agent")
    warned = [r.getMessage() for r in caplog.records if "easy to guess" in r.getMessage()]
    assert len(warned) == 1 and digest("k-admin")[:12] in warned[0] and "k-admin" not in warned[0]
    for bad in ("", "  ", " padded-key-0001"):
        with pytest.raises(ValueError, match="empty or padded"):
            Settings(api_keys={bad: ["admin"]})
    with pytest.raises(ValueError, match="unknown roles"):
        Settings(api_keys={"long-enough-key": ["root"]})


def test_redis_password_through_redis_url(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "r", extra=["--requirepass", "s3cret-pass"]) as server:
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            redis.Redis.from_url(server.url).ping()
        url = f"redis://:s3cret-pass@127.0.0.1:{server.port}/0"
        s = Settings(redis_url=url, data_dir=tmp_path / "d", api_keys={KEY: ALL}, model_secret="x")
        with TestClient(create_app(s), headers={"Authorization": f"Bearer {KEY}"}) as c:
            res = c.post("/v1/events", json={"event_id": "e1", "type": "click", "ts": 1,
                                             "customer_id": "c1"})
            assert res.status_code == 202 and res.json()["accepted"] == 1
            assert c.get("/readyz").json()["redis"] is True
