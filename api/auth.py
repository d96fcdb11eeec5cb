"""API keys with roles. Keys are kept only as SHA-256 digests in memory."""

from __future__ import annotations

import hashlib
import hmac
import logging

from api.errors import ApiError

LOG = logging.getLogger("nextbest.api")
WEAK = 16  # characters: a key shorter than this is easy to guess (`secrets.token_urlsafe()` is 43)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, keys: dict[str, list[str]]) -> None:
        self._roles = {digest(k): frozenset(r) for k, r in keys.items()}
        for key in keys:  # served as configured (CONTRACT.md's own example is `k-admin`)
            if len(key) < WEAK:
                LOG.warning("API key %s is shorter than %d characters and easy to guess: use long "
                            "random keys outside tests", digest(key)[:12], WEAK)

    def roles(self, authorization: str | None) -> tuple[str, frozenset[str]]:
        """The key's id (a digest prefix, safe to log) and roles; 401 if unknown."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "unauthorized", "missing API key: send 'Authorization: Bearer KEY'")
        d = digest(authorization[7:].strip())
        for known, roles in self._roles.items():
            if hmac.compare_digest(known, d):
                return known[:12], roles
        raise ApiError(401, "unauthorized", "unknown API key")

    def check(self, authorization: str | None, role: str) -> str:
        key_id, roles = self.roles(authorization)
        if role not in roles:
            raise ApiError(403, "forbidden", f"this API key lacks the '{role}' role")
        return key_id
