"""Webhooks, the pure parts (engine/webhooks.py): signing and its verification, the backoff
schedule, configuration errors and the holder that keeps the last good configuration. The
worker against real receivers is in tests/test_webhooks.py."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import orjson
import pytest

from engine import webhooks as wh
from engine.rules import RuleError


def test_signature_is_hmac_of_timestamp_dot_body_and_verification_rejects_tampering() -> None:
    body = orjson.dumps({"delivery_id": "d", "alert": {"alert_id": "a"}})
    sig = wh.sign(b"key", 1_700_000_000, body)
    manual = hmac.new(b"key", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + manual
    now = 1_700_000_100.0
    assert wh.verify(b"key", "1700000000", body, sig, now)
    assert not wh.verify(b"key", "1700000000", body + b" ", sig, now)      # body changed
    assert not wh.verify(b"other", "1700000000", body, sig, now)           # wrong secret
    assert not wh.verify(b"key", "1700000001", body, sig, now)             # timestamp changed
    assert not wh.verify(b"key", "1700000000", body, sig, now + 301)       # replayed late
    assert not wh.verify(b"key", "soon", body, sig, now)                   # malformed


def test_backoff_doubles_is_capped_jittered_and_bounded() -> None:
    lows = [wh.backoff_s(n, 0.5, 30.0, 0.0) for n in range(1, 10)]
    highs = [wh.backoff_s(n, 0.5, 30.0, 0.999999) for n in range(1, 10)]
    assert lows[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0] and lows[-1] == 15.0
    assert all(lo <= hi <= 2 * lo for lo, hi in zip(lows, highs))
    assert max(highs) <= 30.0 and highs == sorted(highs)
    mid = wh.backoff_s(3, 0.5, 30.0, 0.5)
    assert lows[2] < mid < highs[2]                                      # the jitter is used
    assert wh.give_up(4, 0.0, 1.0, 4, 100.0) and wh.give_up(1, 0.0, 100.0, 4, 100.0)
    assert not wh.give_up(3, 0.0, 99.0, 4, 100.0)
    assert [wh.retryable(s) for s in (None, 502, 429, 200, 404, 422)] == \
        [True, True, True, False, False, False]


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    good = {"id": "crm", "url": "https://crm.example/h", "secret_env": "S"}
    cases = [
        ({**good, "secret_env": "MISSING"}, "webhooks[0] (crm).secret_env: environment variable 'MISSING'"),
        ({**good, "owner": ["rep1"]}, "webhooks[0] (crm): unknown fields ['owner']"),
        ({**good, "min_severity": "urgent"}, "webhooks[0] (crm).min_severity: 'urgent'"),
        ({**good, "types": "churn_risk"}, "webhooks[0] (crm).types: needs a non-empty list"),
        ({"id": "x y", "url": "http://h", "secret_env": "S"}, "webhooks[0] (x y).id"),
        ({**good, "secret": "short"}, "needs exactly one of"),
        ({**good, "url": "http://h:99999/x"}, "webhooks[0] (crm).url: needs an http(s) URL"),
        ({**good, "url": "crm.example/h"}, "webhooks[0] (crm).url: needs an http(s) URL"),
    ]
    for item, message in cases:
        with pytest.raises(RuleError) as exc:
            wh.parse({"webhooks": [item]}, "webhooks.yaml", {"S": "v"})
        assert str(exc.value).startswith("webhooks.yaml: ") and message in str(exc.value), exc.value
    with pytest.raises(RuleError, match=r"webhooks\[1\].id: 'crm' is used twice"):
        wh.parse({"webhooks": [good, good]}, "webhooks.yaml", {"S": "v"})
    subs = wh.parse({"webhooks": [good, {"id": "b", "url": "http://h", "secret": "x" * 16}]},
                    "webhooks.yaml", {"S": "from-env"})
    assert [s.secret for s in subs] == [b"from-env", b"x" * 16]
    shipped = Path(__file__).parents[1] / "rules" / "webhooks.yaml"
    assert wh.load(shipped, {}) == []  # the default posts nothing anywhere


def test_a_broken_edit_keeps_the_last_good_subscriptions(tmp_path: Path) -> None:
    path = tmp_path / "webhooks.yaml"
    path.write_text("webhooks:\n  - {id: a, url: 'http://h', secret: '0123456789abcdef'}\n")
    os.utime(path, (1, 1))
    held = wh.Subscriptions(path, {})
    assert held.refresh() and not held.refresh()  # read once, then only when it changes
    assert [s.id for s in held.subs] == ["a"] and held.error is None
    path.write_text("webhooks:\n  - {id: a, url: 'ftp://h', secret: '0123456789abcdef'}\n")
    os.utime(path, (2, 2))
    held.refresh()
    assert [s.id for s in held.subs] == ["a"] and "webhooks[0] (a).url" in held.error
    path.write_text("webhooks: [{id: b, url: 'http://h', secret: '0123456789abcdef'}]\n")
    os.utime(path, (3, 3))
    held.refresh()
    assert [s.id for s in held.subs] == ["b"] and held.error is None


# -- the worker against real receivers -------------------------------------------------------
