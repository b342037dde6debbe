"""Tenant API keys: random bearer tokens, stored only as their sha256 hash.

A key is `lrg-` + 43 URL-safe characters (256 random bits). It is shown once when created or
rotated; the registry keeps `api_key_hash(key)` and finds a tenant by hashing the presented key.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "api_key_hash", "new_api_key"]

KEY_PREFIX = "lrg-"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()
