"""What only the PostgreSQL registry has: its schema upgraded in place (from schema 1, as the
SQLite file's is), gateways opening one database at once, the write lock across processes,
lost connections replaced, errors that never show the URL's credentials, and the setting
that picks it. The registry's contract runs on it too (the `registry` fixture's backends)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from adapters import postgres_schema, sqlite_db
from adapters.errors import RegistryBusy, RegistryError, RegistryUnavailable
from adapters.from_settings import open_registry
from adapters.postgres_db import WRITE_LOCK
from adapters.postgres_registry import PostgresRegistry
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from cli.main import main
from lorag.base_model import BaseModelInfo
from lorag.settings import BUNDLED_MODEL_NAME, Settings, settings_error_lines
from tests.postgres import SHARED_DATABASE, PostgresServer

MAX_RANK = 16
PASSED = {"passed": True, "judged": True, "at": "2026-12-06T00:00:00", "by": "t", "failures": []}

# The registry's tables at schema 1, in PostgreSQL's types: no gate verdicts, no instructions,
# no history (what the SQLite file had then, tests/adapters/test_registry_history.py).
SCHEMA_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE tenants (
    id TEXT PRIMARY KEY, display_name TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL, key_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE adapter_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
CREATE TABLE adapter_versions (
    name TEXT NOT NULL REFERENCES adapter_names (name),
    version INTEGER NOT NULL CHECK (version >= 1),
    base_model TEXT NOT NULL, rank INTEGER NOT NULL, alpha DOUBLE PRECISION NOT NULL,
    targets JSONB NOT NULL, sha256 TEXT NOT NULL, size_bytes BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, origin TEXT NOT NULL,
    metrics JSONB NOT NULL DEFAULT '{}', notes TEXT NOT NULL DEFAULT '',
    owner TEXT REFERENCES tenants (id), declared_base TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE modes (
    tenant TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL, adapter TEXT, version INTEGER,
    retrieval JSONB NOT NULL DEFAULT '{}', position INTEGER NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, name),
    FOREIGN KEY (adapter, version) REFERENCES adapter_versions (name, version),
    CHECK ((adapter IS NULL) = (version IS NULL))
);
CREATE UNIQUE INDEX modes_one_default ON modes (tenant) WHERE is_default = 1;
"""


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty registry (dropped afterwards)."""
    url = postgres.new_registry_url()
    yield url
    postgres.drop(url)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[..., PostgresRegistry]]:
    """opened(url, **options) -> a PostgresRegistry storing in `tmp_path`, closed afterwards."""
    registries: list[PostgresRegistry] = []

    def open_one(url: str, **options: float) -> PostgresRegistry:
        registries.append(PostgresRegistry(url, AdapterStore(tmp_path / "adapters"), **options))
        return registries[-1]

    yield open_one
    for registry in registries:
        registry.close()


def test_both_engines_number_the_schema_alike() -> None:
    assert postgres_schema.SCHEMA_VERSION == sqlite_db.SCHEMA_VERSION
    assert set(postgres_schema.MIGRATIONS) == set(sqlite_db.MIGRATIONS)


def test_a_schema_1_registry_is_upgraded_in_place(
    database: str,
    opened: Callable[..., PostgresRegistry],
    base_info: BaseModelInfo,
    lora_a: Path,
) -> None:
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(SCHEMA_1)
        conn.execute("INSERT INTO tenants VALUES ('acme', 'ACME', '2026-01-01T00:00:00Z', 'h')")
        conn.execute("INSERT INTO adapter_names VALUES ('support', 1)")
        conn.execute(
            "INSERT INTO adapter_versions (name, version, base_model, rank, alpha, targets, "
            "sha256, size_bytes, created_at, origin, metrics) VALUES ('support', 1, "
            "'smollm2-135m-instruct', 8, 16, '[\"q_proj\"]', repeat('a', 64), 123, "
            "'2026-01-02T03:04:05Z', 'train:run-1', '{\"format_pass\": 0.5}')"
        )
        conn.execute(
            "INSERT INTO modes (tenant, name, adapter, version, position, is_default) "
            "VALUES ('acme', 'support', 'support', 1, 0, 1)"
        )
        columns = [c.name for c in conn.execute("SELECT * FROM modes").description or ()]
        assert "system_prompt" not in columns  # really the old shape

    registry = opened(database)
    old = registry.get_version("support", 1)
    assert (old.rank, old.targets, old.origin, old.metrics, old.gate) == (
        8,
        ("q_proj",),
        "train:run-1",
        {"format_pass": 0.5},
        None,
    )
    assert old.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    (mode,) = registry.list_modes("acme")
    assert (mode.target, mode.system_prompt, mode.is_default) == ("support@v1", None, True)
    assert registry.mode_history("acme") == []
    assert registry.record_gate("support", 1, PASSED).gate_status == "passed"
    v2 = registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    assert v2.version == 2  # numbering goes on from the old rows
    registry.set_mode("acme", "support", "support@v2", system_prompt="Be brief.", actor="ops")
    assert registry.get_mode("acme", "support").system_prompt == "Be brief."
    assert [c.action for c in registry.mode_history("acme")] == ["repoint"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


def test_gateways_opening_a_new_database_at_once_create_it_once(
    database: str, opened: Callable[..., PostgresRegistry]
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_and_use(n: int) -> None:
        try:
            barrier.wait()
            opened(database).create_tenant(f"t{n}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_use, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [t.id for t in opened(database).list_tenants()] == ["t0", "t1", "t2", "t3"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


def test_a_newer_schema_or_foreign_tables_are_refused(
    postgres: PostgresServer, database: str, opened: Callable[..., PostgresRegistry]
) -> None:
    opened(database).close()
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 3")
    with pytest.raises(RegistryError, match="has schema 3, newer than this lorag's"):
        opened(database)
    other = postgres.new_registry_url()
    try:
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("CREATE TABLE tenants (id TEXT)")
        with pytest.raises(RegistryError, match="`tenants` table that lorag did not create"):
            opened(other)
    finally:
        postgres.drop(other)


def test_a_writer_waits_for_another_processes_write_lock(
    database: str, opened: Callable[..., PostgresRegistry]
) -> None:
    registry = opened(database, busy_timeout_s=0.3)
    _, key = registry.create_tenant("acme")
    with psycopg.connect(database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))  # another gateway writes
        with pytest.raises(RegistryBusy) as busy:
            registry.create_tenant("globex")
        assert busy.value.status == 503 and "retry" in busy.value.message
        assert registry.tenant_for_key(key).id == "acme"  # readers never wait for it
        holder.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
    registry.create_tenant("globex")
    assert [t.id for t in registry.list_tenants()] == ["acme", "globex"]


def test_connections_the_server_closed_are_replaced(
    postgres: PostgresServer, database: str, opened: Callable[..., PostgresRegistry]
) -> None:
    registry = opened(database)
    _, key = registry.create_tenant("acme")
    sessions = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'lorag'"
    name = SHARED_DATABASE
    with contextlib.closing(postgres.connect()) as admin:
        pids = [row[0] for row in admin.execute(sessions, (name,))]
        assert pids  # the pool's idle connection(s)
        for pid in pids:  # as a server restart or an idle timeout ends them
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute(sessions, (name,)).fetchall() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert registry.tenant_for_key(key).id == "acme"
    registry.create_tenant("globex")


def test_errors_never_show_the_credentials(
    postgres: PostgresServer, database: str, opened: Callable[..., PostgresRegistry]
) -> None:
    password = postgres.password
    wrong = database.replace(f":{password}@", ":not-the-password-4711@")
    with pytest.raises(RegistryError) as refused:
        opened(wrong)
    assert "password authentication failed" in refused.value.message
    closed_port = database.replace(f":{postgres.port}/", ":1/")
    with pytest.raises(RegistryError) as unreachable:
        opened(closed_port)
    own = postgres.new_database()
    registry = opened(own, busy_timeout_s=1)
    registry.create_tenant("acme")
    postgres.drop(own)  # the server no longer has that database: every call fails
    with pytest.raises(RegistryUnavailable) as gone:
        registry.list_tenants()
    assert gone.value.status == 503
    for error in (refused.value, unreachable.value, gone.value):
        shown = f"{error} {error!r} {error.message} {error.__cause__} {error.__context__}"
        for secret in (password, "not-the-password-4711", database, wrong, own):
            assert secret not in shown
    assert f"127.0.0.1:{postgres.port}/" in refused.value.message  # where, without who


def test_the_setting_picks_the_backend_and_hides_the_url(
    tmp_path: Path, database: str, postgres: PostgresServer
) -> None:
    embedded = open_registry(Settings(data_dir=tmp_path, registry_url=None))
    assert isinstance(embedded, SqliteRegistry)
    shared = open_registry(Settings(data_dir=tmp_path, registry_url=database))
    try:
        assert isinstance(shared, PostgresRegistry)
        assert postgres.password not in shared.where
        assert shared.where == f"postgresql://127.0.0.1:{postgres.port}/{SHARED_DATABASE}"
        assert shared.store.root == tmp_path / "adapters"
    finally:
        shared.close()
    settings = Settings(data_dir=tmp_path, registry_url=database)
    assert postgres.password not in repr(settings)
    with pytest.raises(ValidationError) as bad:
        Settings(registry_url="mysql://root:hunter22@db/lorag")
    [line] = settings_error_lines(bad.value)
    assert line.startswith("LORAG_REGISTRY_URL: ") and "got a mysql:// URL" in line
    assert "hunter22" not in line
    assert Settings(registry_url="  ").registry_url is None  # blank = unset


def test_the_cli_works_on_a_postgresql_registry(
    tmp_path: Path,
    database: str,
    base_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    monkeypatch.setenv("LORAG_MODEL_NAME", BUNDLED_MODEL_NAME)
    monkeypatch.setenv("LORAG_REGISTRY_URL", database)
    assert main(["tenants", "create", "acme"]) == 0
    assert main(["tenants", "set-mode", "acme", "plain", "base"]) == 0
    assert main(["tenants", "list"]) == 0
    out = capsys.readouterr().out
    assert "acme" in out
    assert not (tmp_path / "data" / "registry.sqlite3").exists()  # nothing went to SQLite
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT tenant, name FROM modes").fetchall() == [("acme", "plain")]
