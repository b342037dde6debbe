"""Per-tenant prefix-cache salts: a tenant's cached prompt prefixes serve its own requests only.

vLLM reuses the KV cache of any earlier request that began with the same tokens, whoever sent
it: a request that starts like another tenant's cached prompt (its system prompt, its retrieved
documents) is answered measurably sooner, a timing side channel. vLLM mixes a request's
`cache_salt` into the hash of its first cache block, so requests share cached prefixes only
when their salts are equal. The gateway sets the salt on every chat and completion request it
sends, replacing any the client sent (no caller can pick another tenant's salt): one per
tenant, one shared by all anonymous callers (they see the base model only, as everyone may).

A salt is an HMAC of the tenant's id under a per-deployment secret (the engine's key), so it
cannot be derived from the id alone. It is 64 hex digits: within vLLM's limit (128
characters, no `@`, `/`, `\\` or NUL).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["CacheSalts"]

_LABEL = b"lorag prefix-cache salt\0"
_ANONYMOUS = b"anonymous"


class CacheSalts:
    """The `cache_salt` for each caller, derived from one secret."""

    def __init__(self, secret: str | None):
        self._key = _LABEL + (secret or "").encode()

    def for_tenant(self, tenant_id: str | None) -> str:
        """The salt of `tenant_id`'s requests; None: an anonymous caller's."""
        subject = _ANONYMOUS if tenant_id is None else b"tenant\0" + tenant_id.encode()
        return hmac.new(self._key, subject, hashlib.sha256).hexdigest()
