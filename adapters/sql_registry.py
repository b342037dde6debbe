"""`SqlRegistry`: the registry's rules written once in SQL, on either database engine.

`SqliteRegistry` (one file, embedded) and `PostgresRegistry` (a server several gateways share)
are this class on their database (`adapters.sql_database`). Each call is one transaction;
writes hold the registry's write lock from their start, so the artifact store changes they
make (putting or removing a folder) are serialized between threads, processes and gateways.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.api_keys import api_key_hash, new_api_key
from adapters.artifact import validate_artifact
from adapters.errors import Conflict, InvalidArtifact, NotFound
from adapters.models import AdapterVersion, Mode, ModeChange, Tenant
from adapters.registry import Registry
from adapters.sql_database import SqlConnection, SqlDatabase
from adapters.sql_rows import (
    insert_history,
    insert_version,
    json_text,
    mode_row,
    row_to_change,
    row_to_mode,
    row_to_tenant,
    row_to_version,
    tenant_exists,
    tenant_row,
)
from adapters.store import AdapterStore
from lorag.base_model import BaseModelInfo
from lorag.names import (
    BASE_TARGET,
    check_adapter_name,
    check_mode_name,
    check_tenant_id,
    check_version,
    format_ref,
    parse_ref,
)

__all__ = ["SqlRegistry"]


class SqlRegistry(Registry):
    """The registry in the database `db`, with artifacts in `store`."""

    def __init__(self, db: SqlDatabase, store: AdapterStore):
        self.store = store
        self._db = db

    def close(self) -> None:
        self._db.close()

    # --- adapter versions ----------------------------------------------------------------
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
        check_adapter_name(name)
        if owner is not None:
            check_tenant_id(owner, param="owner")
        metrics_text = json_text(metrics or {}, param="metrics")
        if gate is not None:
            json_text(gate, param="gate")
        info = validate_artifact(Path(folder), base, max_rank)
        created_at = datetime.now(UTC)
        with self._db.transaction(write=True) as conn:
            self._check_owner(conn, name, owner)
            # under the write lock: no other import or delete changes this until we commit
            in_use = self._digest_used(conn, info.sha256)
            try:
                digest, _ = self.store.put(Path(folder))
                if digest != info.sha256:
                    if not self._digest_used(conn, digest):
                        self.store.remove(digest)
                    raise InvalidArtifact(
                        f"the files in {folder} changed while they were imported", param="path"
                    )
                row = conn.execute(
                    "SELECT last_version FROM adapter_names WHERE name = ?", (name,)
                ).fetchone()
                version = (row["last_version"] if row else 0) + 1
                conn.execute(
                    "INSERT INTO adapter_names (name, last_version) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
                    (name, version),
                )
                record = AdapterVersion(
                    name=name,
                    version=version,
                    base_model=base.name,
                    rank=info.rank,
                    alpha=info.alpha,
                    targets=info.targets,
                    sha256=info.sha256,
                    size_bytes=info.size_bytes,
                    created_at=created_at,
                    origin=origin,
                    metrics=dict(metrics or {}),
                    notes=notes,
                    owner=owner,
                    declared_base=info.declared_base,
                    gate=dict(gate) if gate is not None else None,
                )
                insert_version(conn, record, metrics_text)
            except BaseException:
                # decided without asking the database again: after a failed statement a
                # PostgreSQL transaction answers nothing more
                if not in_use:
                    self.store.remove(info.sha256)
                raise
        return record

    def record_gate(self, name: str, version: int, gate: dict[str, Any]) -> AdapterVersion:
        check_version(version)
        text = json_text(gate, param="gate")
        with self._db.transaction(write=True) as conn:
            self._version_row(conn, name, version)
            conn.execute(
                "UPDATE adapter_versions SET gate = ? WHERE name = ? AND version = ?",
                (text, name, version),
            )
            return self._version_row(conn, name, version)

    @staticmethod
    def _digest_used(conn: SqlConnection, digest: str) -> bool:
        """Whether a version's artifact is the stored folder `digest`."""
        row = conn.execute(
            "SELECT 1 FROM adapter_versions WHERE sha256 = ? LIMIT 1", (digest,)
        ).fetchone()
        return row is not None

    def _check_owner(self, conn: SqlConnection, name: str, owner: str | None) -> None:
        if owner is not None and not tenant_exists(conn, owner):
            raise NotFound(f"tenant {owner!r} not found", param="owner")
        owners = {
            r["owner"]
            for r in conn.execute(
                "SELECT DISTINCT owner FROM adapter_versions WHERE name = ?", (name,)
            )
        }
        if owners and owners != {owner}:
            current = next(iter(owners))
            who = f"tenant {current!r}" if current else "no tenant (shared)"
            raise Conflict(
                f"adapter {name!r} is owned by {who}: its new versions must have the same owner",
                param="owner",
            )

    def list_adapters(self, name: str | None = None) -> list[AdapterVersion]:
        with self._db.transaction(write=False) as conn:
            if name is None:
                rows = conn.execute("SELECT * FROM adapter_versions ORDER BY name, version")
            else:
                rows = conn.execute(
                    "SELECT * FROM adapter_versions WHERE name = ? ORDER BY version",
                    (check_adapter_name(name),),
                )
            return [row_to_version(row) for row in rows]

    def get_version(self, name: str, version: int | None = None) -> AdapterVersion:
        with self._db.transaction(write=False) as conn:
            return self._version_row(conn, name, version)

    @staticmethod
    def _version_row(
        conn: SqlConnection, name: str, version: int | None, *, tenant: str | None = None
    ) -> AdapterVersion:
        """A version (latest if None); with `tenant`, only one that tenant may use."""
        check_adapter_name(name, param="adapter")
        where = "name = ?"
        params: list[str | int] = [name]
        if version is not None:
            where += " AND version = ?"
            params.append(check_version(version))
        if tenant is not None:
            where += " AND (owner IS NULL OR owner = ?)"
            params.append(tenant)
        row = conn.execute(
            f"SELECT * FROM adapter_versions WHERE {where} ORDER BY version DESC LIMIT 1", params
        ).fetchone()
        if row is None:
            ref = name if version is None else format_ref(name, version)
            raise NotFound(f"adapter {ref!r} not found", param="adapter")
        return row_to_version(row)

    def delete_version(self, name: str, version: int) -> None:
        check_version(version)
        with self._db.transaction(write=True) as conn:
            record = self._version_row(conn, name, version)
            users = self._modes_using(conn, name, version)
            if users:
                raise Conflict(
                    f"{record.served_name} is used by "
                    f"{', '.join(m.qualified_name for m in users)}: point those modes elsewhere "
                    "first",
                    param="adapter",
                )
            conn.execute(
                "DELETE FROM adapter_versions WHERE name = ? AND version = ?", (name, version)
            )
            # under the write lock: no import starts using the folder meanwhile
            if not self._digest_used(conn, record.sha256):
                self.store.remove(record.sha256)

    def artifact_path(self, version: AdapterVersion) -> Path:
        return self.store.path(version.sha256)

    # --- tenants and keys ----------------------------------------------------------------
    def create_tenant(self, tenant_id: str, display_name: str = "") -> tuple[Tenant, str]:
        check_tenant_id(tenant_id)
        api_key = new_api_key()
        tenant = Tenant(tenant_id, display_name, datetime.now(UTC))
        with self._db.transaction(write=True) as conn:
            if tenant_exists(conn, tenant_id):
                raise Conflict(f"tenant {tenant_id!r} already exists", param="tenant")
            conn.execute(
                "INSERT INTO tenants (id, display_name, created_at, key_hash) VALUES (?, ?, ?, ?)",
                (tenant_id, display_name, tenant.created_at.isoformat(), api_key_hash(api_key)),
            )
        return tenant, api_key

    def rotate_key(self, tenant_id: str) -> str:
        check_tenant_id(tenant_id)
        api_key = new_api_key()
        with self._db.transaction(write=True) as conn:
            updated = conn.execute(
                "UPDATE tenants SET key_hash = ? WHERE id = ?", (api_key_hash(api_key), tenant_id)
            ).rowcount
            if not updated:
                raise NotFound(f"tenant {tenant_id!r} not found", param="tenant")
        return api_key

    def tenant_for_key(self, api_key: str) -> Tenant | None:
        if not isinstance(api_key, str) or not api_key:
            return None
        with self._db.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT * FROM tenants WHERE key_hash = ?", (api_key_hash(api_key),)
            ).fetchone()
        return None if row is None else row_to_tenant(row)

    def list_tenants(self) -> list[Tenant]:
        with self._db.transaction(write=False) as conn:
            return [row_to_tenant(r) for r in conn.execute("SELECT * FROM tenants ORDER BY id")]

    def get_tenant(self, tenant_id: str) -> Tenant:
        check_tenant_id(tenant_id)
        with self._db.transaction(write=False) as conn:
            return tenant_row(conn, tenant_id)

    def delete_tenant(self, tenant_id: str) -> None:
        check_tenant_id(tenant_id)
        with self._db.transaction(write=True) as conn:
            tenant_row(conn, tenant_id)
            owned = [
                format_ref(r["name"], r["version"])
                for r in conn.execute(
                    "SELECT name, version FROM adapter_versions WHERE owner = ? "
                    "ORDER BY name, version",
                    (tenant_id,),
                )
            ]
            if owned:
                raise Conflict(
                    f"tenant {tenant_id!r} owns adapter versions {', '.join(owned)}: delete "
                    "them first",
                    param="tenant",
                )
            conn.execute("DELETE FROM tenants WHERE id = ?", (tenant_id,))

    # --- modes ---------------------------------------------------------------------------
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
        check_tenant_id(tenant_id)
        check_mode_name(mode)
        ref = None if target == BASE_TARGET else parse_ref(target, param="target")
        retrieval_text = None if retrieval is None else json_text(retrieval, param="retrieval")
        with self._db.transaction(write=True) as conn:
            tenant_row(conn, tenant_id)
            adapter = version = None
            record = None
            if ref is not None:
                record = self._version_row(conn, ref.name, ref.version, tenant=tenant_id)
                adapter, version = record.name, record.version
            existing = conn.execute(
                "SELECT * FROM modes WHERE tenant = ? AND name = ?", (tenant_id, mode)
            ).fetchone()
            before = None if existing is None else row_to_mode(existing)
            if existing is None:
                stats = conn.execute(
                    "SELECT COUNT(*) AS n, COALESCE(MAX(position), -1) AS last FROM modes "
                    "WHERE tenant = ?",
                    (tenant_id,),
                ).fetchone()
                conn.execute(
                    "INSERT INTO modes (tenant, name, adapter, version, retrieval, position, "
                    "system_prompt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        tenant_id,
                        mode,
                        adapter,
                        version,
                        retrieval_text or "{}",
                        stats["last"] + 1,
                        system_prompt or None,
                    ),
                )
                if default is None:
                    default = stats["n"] == 0
            else:
                prompt = existing["system_prompt"] if system_prompt is None else system_prompt
                conn.execute(  # retrieval NULL: kept as stored
                    "UPDATE modes SET adapter = ?, version = ?, "
                    "retrieval = COALESCE(?, retrieval), system_prompt = ? "
                    "WHERE tenant = ? AND name = ?",
                    (
                        adapter,
                        version,
                        retrieval_text,
                        prompt or None,
                        tenant_id,
                        mode,
                    ),
                )
            if default:
                conn.execute("UPDATE modes SET is_default = 0 WHERE tenant = ?", (tenant_id,))
            if default is not None:
                conn.execute(
                    "UPDATE modes SET is_default = ? WHERE tenant = ? AND name = ?",
                    (int(default), tenant_id, mode),
                )
            after = mode_row(conn, tenant_id, mode)
            self._record_change(conn, before, after, record, actor=actor, forced=forced)
            return after

    @staticmethod
    def _record_change(
        conn: SqlConnection,
        before: Mode | None,
        after: Mode,
        version: AdapterVersion | None,
        *,
        actor: str,
        forced: bool,
        action: str | None = None,
    ) -> None:
        """One history row for a mode set (nothing when nothing changed)."""
        changed = tuple(
            name
            for name, old, new in (
                ("retrieval", before and before.retrieval, after.retrieval),
                ("system_prompt", before and before.system_prompt, after.system_prompt),
                ("default", before and before.is_default, after.is_default),
            )
            if before is not None and old != new
        )
        repointed = before is None or before.target != after.target
        if not repointed and not changed:
            return
        gate = None if version is None else version.gate_status
        if action is None:
            action = "create" if before is None else "repoint" if repointed else "settings"
        insert_history(
            conn,
            ModeChange(
                id=0,
                tenant=after.tenant,
                mode=after.name,
                at=datetime.now(UTC),
                actor=actor or "unknown",
                action=action,
                from_target=None if before is None else before.target,
                to_target=after.target,
                gate=gate,
                forced=forced and gate not in (None, "passed"),
                changed=changed,
            ),
        )

    def remove_mode(self, tenant_id: str, mode: str, *, actor: str = "") -> None:
        check_tenant_id(tenant_id)
        check_mode_name(mode)
        with self._db.transaction(write=True) as conn:
            before = mode_row(conn, tenant_id, mode)
            conn.execute("DELETE FROM modes WHERE tenant = ? AND name = ?", (tenant_id, mode))
            insert_history(
                conn,
                ModeChange(
                    id=0,
                    tenant=tenant_id,
                    mode=mode,
                    at=datetime.now(UTC),
                    actor=actor or "unknown",
                    action="remove",
                    from_target=before.target,
                    to_target=None,
                    gate=None,
                ),
            )

    def mode_history(
        self, tenant_id: str, mode: str | None = None, *, limit: int = 100
    ) -> list[ModeChange]:
        check_tenant_id(tenant_id)
        where, params = "tenant = ?", [tenant_id]
        if mode is not None:
            where += " AND mode = ?"
            params.append(check_mode_name(mode))
        with self._db.transaction(write=False) as conn:
            tenant_row(conn, tenant_id)
            rows = conn.execute(
                f"SELECT * FROM mode_history WHERE {where} ORDER BY id DESC LIMIT ?",
                (*params, max(1, limit)),
            )
            return [row_to_change(r) for r in rows]

    def rollback_mode(self, tenant_id: str, mode: str, *, actor: str = "") -> Mode:
        check_tenant_id(tenant_id)
        check_mode_name(mode)
        with self._db.transaction(write=True) as conn:
            before = mode_row(conn, tenant_id, mode)
            row = conn.execute(
                "SELECT * FROM mode_history WHERE tenant = ? AND mode = ? "
                "AND action IN ('repoint', 'rollback') AND to_target = ? "
                "ORDER BY id DESC LIMIT 1",
                (tenant_id, mode, before.target),
            ).fetchone()
            if row is None or row["from_target"] is None:
                raise Conflict(
                    f"{before.qualified_name} has no earlier target to roll back to (it has "
                    f"pointed at {before.target} since it was created)",
                    param="mode",
                )
            target = row["from_target"]
            record = None
            if target != BASE_TARGET:
                ref = parse_ref(target, param="target")
                try:
                    record = self._version_row(conn, ref.name, ref.version, tenant=tenant_id)
                except NotFound:
                    raise Conflict(
                        f"{before.qualified_name} cannot roll back to {target}: that version "
                        "was deleted",
                        param="mode",
                    ) from None
            conn.execute(
                "UPDATE modes SET adapter = ?, version = ? WHERE tenant = ? AND name = ?",
                (
                    None if record is None else record.name,
                    None if record is None else record.version,
                    tenant_id,
                    mode,
                ),
            )
            after = mode_row(conn, tenant_id, mode)
            self._record_change(
                conn, before, after, record, actor=actor, forced=False, action="rollback"
            )
            return after

    def list_modes(self, tenant_id: str) -> list[Mode]:
        check_tenant_id(tenant_id)
        with self._db.transaction(write=False) as conn:
            tenant_row(conn, tenant_id)
            rows = conn.execute(
                "SELECT * FROM modes WHERE tenant = ? ORDER BY position, name", (tenant_id,)
            )
            return [row_to_mode(r) for r in rows]

    def get_mode(self, tenant_id: str, mode: str) -> Mode:
        check_tenant_id(tenant_id)
        check_mode_name(mode)
        with self._db.transaction(write=False) as conn:
            return mode_row(conn, tenant_id, mode)

    def default_mode(self, tenant_id: str) -> Mode | None:
        check_tenant_id(tenant_id)
        with self._db.transaction(write=False) as conn:
            tenant_row(conn, tenant_id)
            row = conn.execute(
                "SELECT * FROM modes WHERE tenant = ? AND is_default = 1", (tenant_id,)
            ).fetchone()
        return None if row is None else row_to_mode(row)

    def modes_using(self, name: str, version: int) -> list[Mode]:
        check_adapter_name(name, param="adapter")
        check_version(version)
        with self._db.transaction(write=False) as conn:
            return self._modes_using(conn, name, version)

    @staticmethod
    def _modes_using(conn: SqlConnection, name: str, version: int) -> list[Mode]:
        rows = conn.execute(
            "SELECT * FROM modes WHERE adapter = ? AND version = ? ORDER BY tenant, position",
            (name, version),
        )
        return [row_to_mode(r) for r in rows]
