"""The registry's rows and records: reading rows into `adapters.models` records, writing the
rows of versions and history, and the small lookups every registry call makes.

Both engines store the same columns. SQLite keeps JSON and times as text; PostgreSQL as
`jsonb` and `timestamptz`, which its driver hands back decoded: the readers take either.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from adapters.errors import InvalidInput, NotFound
from adapters.models import AdapterVersion, Mode, ModeChange, Tenant
from adapters.sql_database import SqlConnection

__all__ = [
    "insert_history",
    "insert_version",
    "json_text",
    "mode_row",
    "row_to_change",
    "row_to_mode",
    "row_to_tenant",
    "row_to_version",
    "tenant_exists",
    "tenant_row",
]


def json_text(value: object, *, param: str) -> str:
    """`value` (a dict) as compact JSON text; InvalidInput if it is not JSON-serializable."""
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{param} must be a JSON object, got {type(value).__name__}", param=param
        )
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{param} is not JSON-serializable: {exc}", param=param) from exc


def _json(value: Any) -> Any:
    """A JSON column: text (SQLite) or already decoded (PostgreSQL); empty means `{}`."""
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return {} if value is None else value


def _when(value: Any) -> datetime:
    """A time column: ISO text (SQLite) or a datetime (PostgreSQL)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def row_to_version(row: Any) -> AdapterVersion:
    return AdapterVersion(
        name=row["name"],
        version=row["version"],
        base_model=row["base_model"],
        rank=row["rank"],
        alpha=row["alpha"],
        targets=tuple(_json(row["targets"])),
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        created_at=_when(row["created_at"]),
        origin=row["origin"],
        metrics=_json(row["metrics"]),
        notes=row["notes"],
        owner=row["owner"],
        declared_base=row["declared_base"],
        gate=None if row["gate"] is None else _json(row["gate"]),
    )


def row_to_tenant(row: Any) -> Tenant:
    return Tenant(
        id=row["id"],
        display_name=row["display_name"],
        created_at=_when(row["created_at"]),
    )


def row_to_mode(row: Any) -> Mode:
    return Mode(
        tenant=row["tenant"],
        name=row["name"],
        adapter=row["adapter"],
        version=row["version"],
        retrieval=_json(row["retrieval"]),
        position=row["position"],
        is_default=bool(row["is_default"]),
        system_prompt=row["system_prompt"],
    )


def row_to_change(row: Any) -> ModeChange:
    return ModeChange(
        id=row["id"],
        tenant=row["tenant"],
        mode=row["mode"],
        at=_when(row["at"]),
        actor=row["actor"],
        action=row["action"],
        from_target=row["from_target"],
        to_target=row["to_target"],
        gate=row["gate"],
        forced=bool(row["forced"]),
        changed=tuple(_json(row["changed"]) or ()),
    )


def insert_history(conn: SqlConnection, change: ModeChange) -> None:
    """Record one mode change (its `id` is assigned by the table)."""
    conn.execute(
        "INSERT INTO mode_history (tenant, mode, at, actor, action, from_target, to_target, "
        "gate, forced, changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            change.tenant,
            change.mode,
            change.at.isoformat(),
            change.actor,
            change.action,
            change.from_target,
            change.to_target,
            change.gate,
            int(change.forced),
            json.dumps(list(change.changed)),
        ),
    )


def insert_version(conn: SqlConnection, v: AdapterVersion, metrics_text: str) -> None:
    """Insert one adapter version row (`metrics_text`: its metrics as JSON text)."""
    conn.execute(
        "INSERT INTO adapter_versions (name, version, base_model, rank, alpha, targets, "
        "sha256, size_bytes, created_at, origin, metrics, notes, owner, declared_base, gate) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            v.name,
            v.version,
            v.base_model,
            v.rank,
            v.alpha,
            json.dumps(list(v.targets)),
            v.sha256,
            v.size_bytes,
            v.created_at.isoformat(),
            v.origin,
            metrics_text,
            v.notes,
            v.owner,
            v.declared_base,
            None if v.gate is None else json.dumps(v.gate, sort_keys=True),
        ),
    )


def tenant_exists(conn: SqlConnection, tenant_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE id = ?", (tenant_id,)).fetchone() is not None


def tenant_row(conn: SqlConnection, tenant_id: str) -> Tenant:
    """The tenant; NotFound if absent."""
    row = conn.execute("SELECT * FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} not found", param="tenant")
    return row_to_tenant(row)


def mode_row(conn: SqlConnection, tenant_id: str, mode: str) -> Mode:
    """The tenant's mode; NotFound (naming the tenant or the mode) if absent."""
    row = conn.execute(
        "SELECT * FROM modes WHERE tenant = ? AND name = ?", (tenant_id, mode)
    ).fetchone()
    if row is None:
        tenant_row(conn, tenant_id)
        raise NotFound(f"tenant {tenant_id!r} has no mode {mode!r}", param="mode")
    return row_to_mode(row)
