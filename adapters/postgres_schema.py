"""The PostgreSQL registry's tables, and their upgrades in place.

The same tables and columns as the SQLite file (`adapters.sqlite_db`), numbered with the same
schema versions, in PostgreSQL's types: JSON as `jsonb` and times as `timestamptz`, so an
operator can query them; the flags stay integers (0/1) so that both engines run the same
statements. `schema_version` holds the version of the tables (SQLite keeps it in the file's
`user_version`).

An upgrade runs `MIGRATIONS[n]` for every version n from the database's to the newest - 1,
then `SCHEMA` (whose statements create only what is missing), all in one transaction under
the registry's write lock: gateways starting at once upgrade it once, and a failure changes
nothing.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "SCHEMA_VERSION_TABLE"]

SCHEMA_VERSION = 2

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL   -- one row: the registry schema these tables have
)
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE         -- sha256 hex of the API key
);

-- One row per adapter name ever used: version numbers are never reused after a delete.
CREATE TABLE IF NOT EXISTS adapter_names (
    name         TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS adapter_versions (
    name          TEXT NOT NULL REFERENCES adapter_names (name),
    version       INTEGER NOT NULL CHECK (version >= 1),
    base_model    TEXT NOT NULL,
    rank          INTEGER NOT NULL,
    alpha         DOUBLE PRECISION NOT NULL,
    targets       JSONB NOT NULL,             -- list
    sha256        TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    origin        TEXT NOT NULL,
    metrics       JSONB NOT NULL DEFAULT '{}',
    notes         TEXT NOT NULL DEFAULT '',
    owner         TEXT REFERENCES tenants (id),
    declared_base TEXT,
    gate          JSONB,                      -- the latest gate verdict (NULL: none)
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS adapter_versions_sha256 ON adapter_versions (sha256);
CREATE INDEX IF NOT EXISTS adapter_versions_owner ON adapter_versions (owner);

CREATE TABLE IF NOT EXISTS modes (
    tenant        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    adapter       TEXT,                       -- NULL with version NULL = the base model
    version       INTEGER,
    retrieval     JSONB NOT NULL DEFAULT '{}',
    position      INTEGER NOT NULL,
    is_default    INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    system_prompt TEXT,                       -- the operator's instructions (NULL: none)
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (adapter, version) REFERENCES adapter_versions (name, version),
    CHECK ((adapter IS NULL) = (version IS NULL))
);
CREATE INDEX IF NOT EXISTS modes_adapter ON modes (adapter, version);
CREATE UNIQUE INDEX IF NOT EXISTS modes_one_default ON modes (tenant) WHERE is_default = 1;

-- Every change of a mode, kept after the mode (or its tenant) is gone: an audit trail.
CREATE TABLE IF NOT EXISTS mode_history (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT NOT NULL,
    mode        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_target TEXT,
    to_target   TEXT,
    gate        TEXT,
    forced      INTEGER NOT NULL DEFAULT 0 CHECK (forced IN (0, 1)),
    changed     JSONB NOT NULL DEFAULT '[]'   -- list
);
CREATE INDEX IF NOT EXISTS mode_history_mode ON mode_history (tenant, mode, id);
"""

# Upgrades in place: version N -> N+1 (SCHEMA above is the newest shape; these bring older
# tables there before it runs).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE adapter_versions ADD COLUMN IF NOT EXISTS gate JSONB",
        "ALTER TABLE modes ADD COLUMN IF NOT EXISTS system_prompt TEXT",
    ),
}
