"""Who is calling: a tenant (by API key), an anonymous caller, or an operator (admin key).

- A tenant key (`lrg-...`) picks the tenant; an unknown or rotated tenant key is refused (401).
- No key, or a key that is not a lorag key (OpenAI clients insist on sending one), is an
  anonymous caller: the base model only, no knowledge base. `LORAG_REQUIRE_API_KEY=true`
  refuses anonymous callers.
- Operators send the admin key (`LORAG_ADMIN_KEY`) as a bearer token or `X-Admin-Key`. An
  empty key is no key: the admin API is off, and an empty offered key never matches.
- With `LORAG_REQUIRE_API_KEY=true`, `/metrics` needs the admin key as well.
- vLLM replicas fetching adapter files (`/internal/...`) send the replica key
  (`LORAG_REPLICA_KEY`) as a bearer token; nothing else opens that endpoint, neither a tenant
  key nor the admin key, and it is off (403) while the replica key is unset.
"""

from __future__ import annotations

import hashlib
import secrets

from fastapi import Request

from adapters.models import Tenant
from service.caller import Caller
from service.errors import Forbidden, Unauthorized
from service.state import app_state

__all__ = [
    "TENANT_KEY_PREFIX",
    "Caller",
    "bearer_token",
    "get_caller",
    "is_admin",
    "require_admin",
    "require_admin_if_keys_required",
    "require_replica",
    "require_tenant",
]

TENANT_KEY_PREFIX = "lrg-"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def get_caller(request: Request) -> Caller:
    state = app_state(request)
    token = bearer_token(request)
    if token and token.startswith(TENANT_KEY_PREFIX):
        tenant = await state.executors.run("lookup", state.registry.tenant_for_key, token)
        if tenant is None:
            raise Unauthorized("invalid API key")
        return Caller(tenant)
    if state.settings.require_api_key:
        raise Unauthorized("an API key is required (Authorization: Bearer lrg-...)")
    return Caller(None)


async def require_tenant(request: Request) -> Tenant:
    caller = await get_caller(request)
    if caller.tenant is None:
        raise Unauthorized("this endpoint needs a tenant API key (Authorization: Bearer lrg-...)")
    return caller.tenant


def _configured_admin_key(request: Request) -> str | None:
    """The admin key, or None when the admin API is off (`Settings` turns blank into None)."""
    configured = app_state(request).settings.admin_key
    key = configured.get_secret_value() if configured is not None else ""
    return key or None


def _admin_key_matches(request: Request) -> bool:
    configured = _configured_admin_key(request)
    offered = (request.headers.get("x-admin-key") or "").strip() or bearer_token(request) or ""
    if configured is None or not offered:  # an empty key never matches anything
        return False
    return secrets.compare_digest(offered.encode(), configured.encode())


def is_admin(request: Request) -> bool:
    """Whether the request carries the right admin key (for details shown only to operators)."""
    return _admin_key_matches(request)


async def require_admin(request: Request) -> None:
    if _configured_admin_key(request) is None:
        raise Forbidden("the admin API is off: set LORAG_ADMIN_KEY")
    if not _admin_key_matches(request):
        raise Unauthorized("invalid admin key")


async def require_admin_if_keys_required(request: Request) -> None:
    """With `LORAG_REQUIRE_API_KEY=true` the service is closed to anonymous callers: operator
    endpoints outside `/admin` (`/metrics`) then need the admin key too."""
    if app_state(request).settings.require_api_key:
        await require_admin(request)


async def require_replica(request: Request) -> None:
    """The replica key, and only it: a replica fetches every tenant's adapter weights, so no
    tenant key may, and the admin key (which operators type and share more widely) is no
    substitute either."""
    configured = app_state(request).settings.replica_key
    if configured is None:
        raise Forbidden("the internal adapter endpoint is off: set LORAG_REPLICA_KEY")
    offered = bearer_token(request) or ""
    # compared as digests: equal lengths, so the time taken says nothing about the key's
    expected = hashlib.sha256(configured.get_secret_value().encode()).digest()
    if not offered or not secrets.compare_digest(
        hashlib.sha256(offered.encode()).digest(), expected
    ):
        raise Unauthorized("invalid replica key")
