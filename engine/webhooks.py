"""Webhook subscriptions: which alerts go where, how a delivery is signed, when it is retried.

The worker that posts them (`nextbest/webhooks.py`) holds the I/O; what decides is here, so it
is tested directly. Receivers verify a delivery from the raw body and two headers:

    expected = "sha256=" + hex(HMAC_SHA256(secret, f"{X-Nextbest-Timestamp}.".encode() + body))
    valid = hmac.compare_digest(expected, X-Nextbest-Signature)
            and abs(now - int(X-Nextbest-Timestamp)) <= 300

and deduplicate on `X-Nextbest-Delivery` (a retry of the same delivery carries the same id).

>>> sub = Subscription(id="crm", url="http://x", secret=b"k", owners=("rep1",), types=None)
>>> sub.wants({"type": "churn_risk", "owner": "rep1", "severity": "high"})
True
>>> sign(b"k", 1700000000, b'{"a":1}')
'sha256=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from engine.alerts import SEVERITIES
from engine.rules import RuleError

ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FIELDS = {"id", "url", "secret", "secret_env", "owners", "types", "min_severity"}
TOLERANCE_S = 300  # receivers reject a timestamp further than this from their clock


@dataclass(frozen=True)
class Subscription:
    """One receiver and the alerts it wants (None: every owner / every type)."""

    id: str
    url: str
    secret: bytes
    owners: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    min_severity: str | None = None

    def wants(self, alert: Mapping[str, Any]) -> bool:
        if self.owners is not None and alert.get("owner") not in self.owners:
            return False
        if self.types is not None and alert.get("type") not in self.types:
            return False
        if self.min_severity is None:
            return True
        sev = alert.get("severity")
        return sev in SEVERITIES and SEVERITIES.index(sev) >= SEVERITIES.index(self.min_severity)


def delivery_id(alert_id: str, subscription_id: str) -> str:
    """Stable across restarts and replays: the same alert to the same subscription is one delivery.

    >>> delivery_id("a1", "crm") == delivery_id("a1", "crm") != delivery_id("a1", "erp")
    True
    """
    return hashlib.blake2b(f"{alert_id}|{subscription_id}".encode(), digest_size=12).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "timestamp.body">`: the timestamp is signed so a captured
    delivery cannot be replayed later with a fresh one."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, now: float,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """What a receiver does (see the module docstring).

    >>> verify(b"k", "100", b"{}", sign(b"k", 100, b"{}"), now=130.0)
    True
    >>> verify(b"k", "100", b"{}", sign(b"k", 100, b"{}"), now=1000.0)   # too old
    False
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    return abs(now - ts) <= tolerance_s and hmac.compare_digest(sign(secret, ts, body), signature)


def backoff_s(attempt: int, base_s: float, cap_s: float, u: float) -> float:
    """Delay before retry number `attempt` (1 = after the first failure): exponential, capped,
    with "equal jitter" (half fixed, half random with `u` in [0, 1)) so a receiver that comes
    back is not hit by every delayed delivery at the same instant.

    >>> [backoff_s(n, 1.0, 10.0, 0.0) for n in (1, 2, 3, 4, 5, 6)]
    [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    >>> backoff_s(3, 1.0, 10.0, 0.999) < 4.0
    True
    """
    full = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return full / 2.0 + u * full / 2.0


def retryable(status: int | None) -> bool:
    """None is a network error or timeout; 408, 429 and 5xx say "later"; other codes are final.

    >>> [retryable(s) for s in (None, 500, 503, 429, 408, 400, 404, 410, 301)]
    [True, True, True, True, True, False, False, False, False]
    """
    return status is None or status in (408, 429) or status >= 500


def give_up(attempts: int, first_ts: float, now: float, max_attempts: int, max_age_s: float) -> bool:
    """True when a failed delivery has had its attempts or its time."""
    return attempts >= max_attempts or now - first_ts >= max_age_s


def retry_after_s(value: str | None) -> float:
    """A `Retry-After` in seconds (an HTTP date is ignored: the backoff applies).

    >>> retry_after_s("30"), retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT"), retry_after_s(None)
    (30.0, 0.0, 0.0)
    """
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return seconds if 0.0 <= seconds < float("inf") else 0.0


def _strings(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or \
            not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{where}: needs a non-empty list of strings, got {value!r}")
    return tuple(value)


def _secret(item: dict[str, Any], where: str, env: Mapping[str, str]) -> bytes:
    if ("secret" in item) == ("secret_env" in item):
        raise RuleError(f"{where}: needs exactly one of 'secret_env' (preferred) or 'secret'")
    if "secret" in item:
        if not isinstance(item["secret"], str) or len(item["secret"]) < 16:
            raise RuleError(f"{where}.secret: needs a string of at least 16 characters")
        return item["secret"].encode()
    name = item["secret_env"]
    value = env.get(name) if isinstance(name, str) else None
    if not value:
        raise RuleError(f"{where}.secret_env: environment variable {name!r} is not set")
    return value.encode()


def _http_url(url: Any) -> bool:
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        return bool(parts and parts.scheme in ("http", "https") and parts.hostname
                    and (parts.port or 0) >= 0 and " " not in url)
    except ValueError:  # e.g. a port out of range, an unclosed [
        return False


def _subscription(item: Any, where: str, env: Mapping[str, str]) -> Subscription:
    if not isinstance(item, dict):
        raise RuleError(f"{where}: needs a mapping, got {item!r}")
    unknown = set(item) - FIELDS
    if unknown:
        raise RuleError(f"{where}: unknown fields {sorted(unknown)} (known: {sorted(FIELDS)})")
    sid, url = item.get("id"), item.get("url")
    if not isinstance(sid, str) or not ID.match(sid):
        raise RuleError(f"{where}.id: needs 1-64 of A-Z a-z 0-9 _ . -, got {sid!r}")
    if not _http_url(url):
        raise RuleError(f"{where}.url: needs an http(s) URL, got {url!r}")
    sev = item.get("min_severity")
    if sev is not None and sev not in SEVERITIES:
        raise RuleError(f"{where}.min_severity: {sev!r} is not one of {list(SEVERITIES)}")
    return Subscription(id=sid, url=url, secret=_secret(item, where, env),
                        owners=_strings(item.get("owners"), f"{where}.owners"),
                        types=_strings(item.get("types"), f"{where}.types"), min_severity=sev)


def parse(doc: Any, source: str, env: Mapping[str, str]) -> list[Subscription]:
    """The subscriptions of a webhooks file; `env` resolves `secret_env`.

    >>> parse({"webhooks": [{"id": "a", "url": "ftp://x", "secret_env": "S"}]}, "webhooks.yaml", {})
    Traceback (most recent call last):
    ...
    engine.rules.RuleError: webhooks.yaml: webhooks[0] (a).url: needs an http(s) URL, got 'ftp://x'
    """
    if doc is None:
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("webhooks") or [], list):
        raise RuleError(f"{source}: needs a mapping with a 'webhooks' list")
    subs: list[Subscription] = []
    for i, item in enumerate(doc.get("webhooks") or []):
        name = f" ({item['id']})" if isinstance(item, dict) and "id" in item else ""
        sub = _subscription(item, f"{source}: webhooks[{i}]{name}", env)
        if any(s.id == sub.id for s in subs):
            raise RuleError(f"{source}: webhooks[{i}].id: {sub.id!r} is used twice")
        subs.append(sub)
    return subs


def load(path: Path, env: Mapping[str, str]) -> list[Subscription]:
    """The subscriptions in `path`; a missing file means none."""
    if not path.exists():
        return []
    try:
        return parse(yaml.safe_load(path.read_text()), path.name, env)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path.name}: cannot read: {exc}") from exc


class Subscriptions:
    """A webhooks file, re-read when it changes; a broken edit keeps the last good
    subscriptions and says why in `error` (the worker logs it)."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path, self.env, self.mtime = path, env, -1.0
        self.subs: list[Subscription] = []
        self.error: str | None = None

    def refresh(self) -> bool:
        """Re-read the file if it changed; True when it was read (successfully or not)."""
        try:
            mtime = self.path.stat().st_mtime if self.path.exists() else None
        except OSError:
            return False
        if mtime == self.mtime:
            return False
        self.mtime = mtime
        try:
            self.subs, self.error = load(self.path, self.env), None
        except RuleError as exc:
            self.error = str(exc)
        return True
