"""LoRA adapter artifacts, their content-addressed store, and the registry of adapter versions,
tenants (with API keys) and tenants' modes.

    artifact.py         validate_artifact: is a peft folder a LoRA servable on this base?
    artifact_files.py   the two artifact files and the digest over them
    base_model.py       BaseModelInfo: the base's served name and linear layer shapes
    store.py            AdapterStore: <root>/sha256/<digest>/ folders, written atomically
    registry.py         Registry: the interface the gateway, CLI and training use
    sql_registry.py     SqlRegistry: the registry's rules in SQL, on either database
                        (sql_database.py: what it needs of one; sql_rows.py: rows <-> records)
    sqlite_registry.py  SqliteRegistry: the registry in one SQLite file (sqlite_db.py: tables)
    postgres_registry.py  PostgresRegistry: the registry in a PostgreSQL database several
                        gateways share (postgres_db.py: pool, lock; postgres_schema.py: tables)
    models.py           AdapterVersion, Tenant, Mode, ModeChange, ArtifactInfo
    promotion.py        check_promotion: only gated versions go live, unless forced
    names.py            names, versions and `name@vN` references
    api_keys.py         tenant API keys (stored hashed)
    from_settings.py    open_registry(settings), base_model_info(settings)
    cli.py              `lorag adapters ...`, `lorag tenants ...`
    errors.py           AdapterError and its subclasses
"""

from adapters.artifact import validate_artifact
from adapters.errors import (
    AdapterError,
    BaseModelUnavailable,
    Conflict,
    InvalidArtifact,
    InvalidInput,
    InvalidName,
    NotFound,
    RegistryError,
)
from adapters.models import AdapterVersion, ArtifactInfo, Mode, ModeChange, Tenant
from adapters.promotion import check_promotion
from adapters.registry import Registry
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.base_model import BaseModelInfo
from lorag.names import BASE_TARGET, AdapterRef, format_ref, parse_ref

__all__ = [
    "BASE_TARGET",
    "AdapterError",
    "AdapterRef",
    "AdapterStore",
    "AdapterVersion",
    "ArtifactInfo",
    "BaseModelInfo",
    "BaseModelUnavailable",
    "Conflict",
    "InvalidArtifact",
    "InvalidInput",
    "InvalidName",
    "Mode",
    "ModeChange",
    "NotFound",
    "Registry",
    "RegistryError",
    "SqliteRegistry",
    "Tenant",
    "check_promotion",
    "format_ref",
    "parse_ref",
    "validate_artifact",
]
