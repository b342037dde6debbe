"""`Caller`: who sent a request, as `service.auth` decides it (a tenant, or anonymous)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.models import Tenant

__all__ = ["Caller"]


@dataclass(frozen=True)
class Caller:
    tenant: Tenant | None

    @property
    def tenant_id(self) -> str | None:
        return self.tenant.id if self.tenant else None
