"""Release discipline in the registry, on each backend: gate verdicts, gated promotion,
instructions, the history of every mode change, rollback; and the upgrade of a schema-1
SQLite registry in place (PostgreSQL's: tests/adapters/test_postgres_registry.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from adapters.errors import Conflict, NotFound
from adapters.promotion import check_promotion
from adapters.sql_registry import SqlRegistry
from adapters.sqlite_db import SCHEMA
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.base_model import BaseModelInfo

MAX_RANK = 16
PASSED = {"passed": True, "judged": True, "at": "2026-12-06T00:00:00", "by": "t", "failures": []}
FAILED = {**PASSED, "passed": False, "failures": ["golden: 1 check failed"]}
NOT_JUDGED = {**FAILED, "judged": False}


@pytest.fixture
def acme(registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path, lora_b: Path):
    registry.create_tenant("acme")
    registry.create_tenant("globex")
    registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK, gate=PASSED)
    registry.import_adapter(lora_b, "support", base=base_info, max_rank=MAX_RANK)
    registry.import_adapter(lora_a, "secret", base=base_info, max_rank=MAX_RANK, owner="globex")
    return registry


def test_gate_verdicts_decide_promotion(acme: SqlRegistry) -> None:
    assert acme.get_version("support", 1).gate_status == "passed"
    assert acme.get_version("support", 2).gate_status == "never gated"
    assert check_promotion(acme, "acme", "support", "support@v1", force=False) is False
    assert check_promotion(acme, "acme", "support", "base", force=False) is False
    with pytest.raises(Conflict, match="support@v2 never passed a gate") as refused:
        check_promotion(acme, "acme", "support", "support@v2", force=False)
    assert refused.value.param == "target" and "lorag adapters gate support@v2" in str(
        refused.value
    )
    assert check_promotion(acme, "acme", "support", "support@v2", force=True) is True

    for verdict, status in ((FAILED, "failed its gate"), (NOT_JUDGED, "was not judged")):
        recorded = acme.record_gate("support", 2, verdict)
        assert recorded.gate == verdict
        with pytest.raises(Conflict, match=status):
            check_promotion(acme, "acme", "support", "support", force=False)  # latest = v2
    acme.record_gate("support", 2, PASSED)
    assert check_promotion(acme, "acme", "support", "support@v2", force=False) is False
    # another tenant's version: left to the registry, which refuses it as if absent
    assert check_promotion(acme, "acme", "x", "secret@v1", force=False) is False
    with pytest.raises(NotFound):
        acme.set_mode("acme", "x", "secret@v1")
    with pytest.raises(NotFound):
        acme.record_gate("support", 9, PASSED)


def test_a_mode_already_live_changes_settings_without_a_gate(acme: SqlRegistry) -> None:
    acme.set_mode("acme", "support", "support@v2", forced=True, actor="ops")
    assert check_promotion(acme, "acme", "support", "support@v2", force=False) is False


def test_instructions_are_kept_replaced_and_removed(acme: SqlRegistry) -> None:
    mode = acme.set_mode("acme", "prompt", "base", system_prompt="Answer in French.")
    assert mode.system_prompt == "Answer in French."
    assert acme.set_mode("acme", "prompt", "base", retrieval={}).system_prompt == mode.system_prompt
    assert acme.set_mode("acme", "prompt", "base", system_prompt="Be brief.").system_prompt == (
        "Be brief."
    )
    assert acme.set_mode("acme", "prompt", "base", system_prompt="").system_prompt is None
    changes = acme.mode_history("acme", "prompt")
    assert [(c.action, c.changed) for c in changes] == [
        ("settings", ("system_prompt",)),
        ("settings", ("system_prompt",)),
        ("create", ()),
    ]  # the call that changed nothing left no row


def test_history_and_rollback(acme: SqlRegistry) -> None:
    acme.set_mode("acme", "support", "support@v1", actor="alice")
    with pytest.raises(Conflict, match="no earlier target"):
        acme.rollback_mode("acme", "support")
    acme.set_mode("acme", "support", "support@v2", actor="bob", forced=True)
    acme.set_mode("acme", "support", "support@v2", retrieval={"enabled": True}, actor="carol")
    back = acme.rollback_mode("acme", "support", actor="dave")
    assert back.target == "support@v1"
    assert back.retrieval == {"enabled": True}  # a rollback returns the target only
    assert acme.rollback_mode("acme", "support", actor="erin").target == "support@v2"
    changes = acme.mode_history("acme", "support")
    assert [(c.action, c.from_target, c.to_target, c.gate, c.forced, c.actor) for c in changes] == [
        ("rollback", "support@v1", "support@v2", "never gated", False, "erin"),
        ("rollback", "support@v2", "support@v1", "passed", False, "dave"),
        ("settings", "support@v2", "support@v2", "never gated", False, "carol"),
        ("repoint", "support@v1", "support@v2", "never gated", True, "bob"),
        ("create", None, "support@v1", "passed", False, "alice"),
    ]
    assert len(acme.mode_history("acme", limit=2)) == 2
    acme.remove_mode("acme", "support", actor="frank")
    kept = acme.mode_history("acme", "support")  # the record outlives the mode
    assert (kept[0].action, kept[0].from_target, kept[0].to_target) == (
        "remove",
        "support@v2",
        None,
    )
    with pytest.raises(NotFound):
        acme.mode_history("ghost")


def test_rollback_to_a_deleted_version_is_refused(acme: SqlRegistry) -> None:
    acme.set_mode("acme", "support", "support@v2", forced=True)
    acme.set_mode("acme", "support", "base")
    acme.delete_version("support", 2)  # no mode uses it now
    with pytest.raises(Conflict, match="support@v2: that version was deleted"):
        acme.rollback_mode("acme", "support")
    assert acme.get_mode("acme", "support").target == "base"


def test_a_schema_1_registry_is_upgraded_in_place(
    tmp_path: Path, base_info: BaseModelInfo, lora_a: Path
) -> None:
    path = tmp_path / "registry.sqlite3"
    schema_1 = SCHEMA.split("-- Every change of a mode")[0]
    schema_1 = schema_1.replace("    gate          TEXT,", "").replace(
        "    system_prompt TEXT,", ""
    )
    schema_1 = "\n".join(line for line in schema_1.splitlines() if "(NULL: none)" not in line)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(schema_1)
        conn.execute(
            "INSERT INTO tenants (id, display_name, created_at, key_hash) "
            "VALUES ('acme', '', '2026-01-01T00:00:00+00:00', 'h')"
        )
        conn.execute(
            "INSERT INTO modes (tenant, name, retrieval, position, is_default) "
            "VALUES ('acme', 'plain', '{}', 0, 1)"
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        columns = {row[1] for row in conn.execute("PRAGMA table_info(modes)")}
        assert "system_prompt" not in columns  # really the old shape

    registry = SqliteRegistry(path, AdapterStore(tmp_path / "adapters"))
    (mode,) = registry.list_modes("acme")
    assert (mode.name, mode.target, mode.system_prompt, mode.is_default) == (
        "plain",
        "base",
        None,
        True,
    )
    assert registry.mode_history("acme") == []
    version = registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    assert registry.record_gate("support", version.version, PASSED).gate_status == "passed"
    registry.set_mode("acme", "plain", "support@v1", system_prompt="Be brief.")
    assert registry.list_modes("acme")[0].system_prompt == "Be brief."
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
