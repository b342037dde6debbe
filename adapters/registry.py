"""The registry interface: adapter versions, tenants and their API keys, and tenants' modes.

`Registry` is what the gateway, the CLI and training use. Two implementations keep it, one
SQL logic (`adapters.sql_registry`) on two databases: `SqliteRegistry` (one file in the data
folder, the embedded default) and `PostgresRegistry` (a server several gateways share,
`LORAG_REGISTRY_URL`). `adapters.from_settings.open_registry` picks one.

Rules every implementation keeps:
- versions of a name are numbered 1, 2, ... and a number is never reused, even after a delete
  (vLLM serves each version as `name@vN`, so a reused name could serve stale weights);
- all versions of a name have the same owner; an owned version is invisible to other tenants
  (they get NotFound, exactly as if it did not exist);
- a version used by a mode cannot be deleted; a tenant owning versions cannot be deleted;
- API keys are shown once and stored only as sha256 hashes;
- a tenant's first mode becomes its default; removing the default mode leaves the tenant
  without one (requests then use the base model) rather than promoting another mode;
- every change of a mode is recorded (`mode_history`: who, when, from, to, the target's gate
  verdict, whether it was forced); the record outlives the mode;
- a change is visible to every reader, in any process or gateway, as soon as its call
  returns: nothing is cached between calls (the gateway reads modes and keys per request).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from adapters.models import AdapterVersion, Mode, ModeChange, Tenant
from lorag.base_model import BaseModelInfo

__all__ = ["Registry"]


class Registry(ABC):
    """Adapter versions, tenants and modes. Methods are synchronous and thread-safe."""

    # --- adapter versions -----------------------------------------------------------------
    @abstractmethod
    def import_adapter(
        self,
        folder: Path,
        name: str,
        *,
        base: BaseModelInfo,
        max_rank: int,
        origin: str = "import",
        metrics: dict[str, Any] | None = None,
        notes: str = "",
        owner: str | None = None,
        gate: dict[str, Any] | None = None,
    ) -> AdapterVersion:
        """Validate the artifact in `folder`, store it and record it as the next version of
        `name` (with its gate verdict, if it was gated). All or nothing: on failure no row and
        no newly stored folder remain."""

    @abstractmethod
    def record_gate(self, name: str, version: int, gate: dict[str, Any]) -> AdapterVersion:
        """Record a gate verdict for a version (`lorag adapters gate`); it replaces the one
        recorded before. The version's weights never change."""

    @abstractmethod
    def list_adapters(self, name: str | None = None) -> list[AdapterVersion]:
        """Every version (of `name` only, if given), ordered by name then version."""

    @abstractmethod
    def get_version(self, name: str, version: int | None = None) -> AdapterVersion:
        """One version; `version` None = the latest. NotFound if absent."""

    @abstractmethod
    def delete_version(self, name: str, version: int) -> None:
        """Delete a version (Conflict naming every `tenant:mode` that uses it) and its stored
        folder unless another version has the same content."""

    @abstractmethod
    def artifact_path(self, version: AdapterVersion) -> Path:
        """The stored folder holding the version's artifact (what vLLM loads)."""

    # --- tenants and keys -------------------------------------------------------------------
    @abstractmethod
    def create_tenant(self, tenant_id: str, display_name: str = "") -> tuple[Tenant, str]:
        """Create a tenant; return it and its API key (shown once, stored hashed)."""

    @abstractmethod
    def rotate_key(self, tenant_id: str) -> str:
        """Give the tenant a new API key; the old one stops working at once."""

    @abstractmethod
    def tenant_for_key(self, api_key: str) -> Tenant | None:
        """The tenant whose key this is, or None."""

    @abstractmethod
    def list_tenants(self) -> list[Tenant]:
        """Every tenant, ordered by id."""

    @abstractmethod
    def get_tenant(self, tenant_id: str) -> Tenant:
        """One tenant; NotFound if absent."""

    @abstractmethod
    def delete_tenant(self, tenant_id: str) -> None:
        """Delete a tenant, its key and its modes (Conflict while it owns adapter versions)."""

    # --- modes -----------------------------------------------------------------------------
    @abstractmethod
    def set_mode(
        self,
        tenant_id: str,
        mode: str,
        target: str,
        *,
        retrieval: dict[str, Any] | None = None,
        default: bool | None = None,
        system_prompt: str | None = None,
        actor: str = "",
        forced: bool = False,
    ) -> Mode:
        """Create or repoint a mode. `target`: "base", "name@vN", or "name" (the latest version
        at the time of the call). `retrieval` None keeps the mode's settings; `default` True
        makes it the default, False clears that, None keeps it (a first mode becomes default);
        `system_prompt` None keeps it, "" removes it. The change is recorded with `actor`
        and `forced` (the caller let an ungated version through: `adapters.promotion`)."""

    @abstractmethod
    def remove_mode(self, tenant_id: str, mode: str, *, actor: str = "") -> None:
        """Remove a mode (recorded); NotFound if absent."""

    @abstractmethod
    def mode_history(
        self, tenant_id: str, mode: str | None = None, *, limit: int = 100
    ) -> list[ModeChange]:
        """The tenant's recorded mode changes (of `mode` only, if given), newest first."""

    @abstractmethod
    def rollback_mode(self, tenant_id: str, mode: str, *, actor: str = "") -> Mode:
        """Point the mode back at the target it had before its last repoint (recorded as a
        rollback; a second rollback undoes the first). Conflict if it was never repointed."""

    @abstractmethod
    def list_modes(self, tenant_id: str) -> list[Mode]:
        """The tenant's modes in their order; NotFound for an unknown tenant."""

    @abstractmethod
    def get_mode(self, tenant_id: str, mode: str) -> Mode:
        """One mode; NotFound if the tenant or the mode is absent."""

    @abstractmethod
    def default_mode(self, tenant_id: str) -> Mode | None:
        """The tenant's default mode, or None (use the base model)."""

    @abstractmethod
    def modes_using(self, name: str, version: int) -> list[Mode]:
        """Every mode (of any tenant) pointing at this adapter version."""

    # --- lifetime --------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 (a no-op default, not an abstract method)
        """Release the registry's connections (the gateway calls it when it stops); the
        registry is not used afterwards."""
