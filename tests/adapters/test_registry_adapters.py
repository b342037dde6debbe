"""The registry's adapter versions, on each backend: import, versions, all-or-nothing
failures, delete, reopen."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.artifact import validate_artifact
from adapters.artifact_files import ARTIFACT_FILES, CONFIG_FILE, WEIGHTS_FILE
from adapters.errors import (
    AdapterError,
    Conflict,
    InvalidArtifact,
    InvalidInput,
    InvalidName,
    NotFound,
    RegistryError,
)
from adapters.sql_database import SqlConnection
from adapters.sql_registry import SqlRegistry
from lorag.base_model import BaseModelInfo

MAX_RANK = 16


def _state(registry: SqlRegistry) -> tuple[object, ...]:
    """Everything an import could change: rows and stored files."""
    root = registry.store.root
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    return registry.list_adapters(), files


def test_import_numbers_versions_and_stores_files(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path, lora_b: Path
) -> None:
    v1 = registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    v2 = registry.import_adapter(
        lora_b,
        "support",
        base=base_info,
        max_rank=MAX_RANK,
        origin="train:run-7",
        metrics={"format_pass": 0.9},
        notes="second try",
    )
    assert (v1.version, v2.version) == (1, 2)
    assert (v1.served_name, v2.served_name) == ("support@v1", "support@v2")
    assert v1.sha256 != v2.sha256
    assert (v2.rank, v2.alpha, v2.targets, v2.base_model) == (
        8,
        16.0,
        ("q_proj", "v_proj"),
        "smollm2-135m-instruct",
    )
    assert (v2.origin, v2.metrics, v2.notes, v2.owner) == (
        "train:run-7",
        {"format_pass": 0.9},
        "second try",
        None,
    )
    for version, source in ((v1, lora_a), (v2, lora_b)):
        path = registry.artifact_path(version)
        assert path.parent == registry.store.root / "sha256"
        for name in ARTIFACT_FILES:
            assert (path / name).read_bytes() == (source / name).read_bytes()
        assert registry.store.verify(version.sha256)
    assert registry.get_version("support") == v2
    assert registry.get_version("support", 1) == v1
    assert registry.list_adapters() == [v1, v2]
    assert registry.list_adapters("support") == [v1, v2]
    assert registry.list_adapters("other") == []


def test_import_failures_leave_registry_and_store_unchanged(
    registry: SqlRegistry,
    base_info: BaseModelInfo,
    lora_a: Path,
    lora_b: Path,
    lora_other_base: Path,
    ia3: Path,
    copy_of: Callable[[Path], Path],
) -> None:
    registry.import_adapter(lora_b, "support", base=base_info, max_rank=MAX_RANK)
    before = _state(registry)
    missing = copy_of(lora_a)
    (missing / WEIGHTS_FILE).unlink()
    corrupt = copy_of(lora_a)
    (corrupt / WEIGHTS_FILE).write_bytes((lora_a / WEIGHTS_FILE).read_bytes()[:1000])
    cases: list[tuple[Path, str, int, type[AdapterError], str]] = [
        (missing, "support", MAX_RANK, InvalidArtifact, f"has no {WEIGHTS_FILE}"),
        (lora_other_base, "support", MAX_RANK, InvalidArtifact, "made for another model"),
        (lora_a, "support", 4, InvalidArtifact, "rank 8 is above the served maximum 4"),
        (lora_a, "../x", MAX_RANK, InvalidName, "invalid adapter name '../x'"),
        (lora_a, "base", MAX_RANK, InvalidName, "reserved"),
        (corrupt, "support", MAX_RANK, InvalidArtifact, "cannot be loaded"),
        (ia3, "support", MAX_RANK, InvalidArtifact, "peft_type is 'IA3'"),
    ]
    for folder, name, max_rank, error, words in cases:
        with pytest.raises(error) as err:
            registry.import_adapter(folder, name, base=base_info, max_rank=max_rank)
        assert words in err.value.message, err.value.message
        assert err.value.status == 400
        assert _state(registry) == before, f"{words}: state changed"
    assert registry.import_adapter(lora_a, "support", base=base_info, max_rank=16).version == 2


def failing_insert(conn: SqlConnection, *args: object) -> None:
    """In place of inserting the version row: a statement the database itself refuses."""
    conn.execute("INSERT INTO no_such_table VALUES (1)")


def test_a_failure_after_storing_removes_the_new_folder(
    registry: SqlRegistry,
    base_info: BaseModelInfo,
    lora_a: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _state(registry)
    monkeypatch.setattr("adapters.sql_registry.insert_version", failing_insert)
    with pytest.raises(RegistryError, match="no_such_table"):
        registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    assert registry.store.digests() == []
    monkeypatch.undo()
    assert _state(registry)[:2] == before[:2]
    assert registry.import_adapter(lora_a, "support", base=base_info, max_rank=16).version == 1


def test_a_failure_keeps_content_other_versions_use(
    registry: SqlRegistry,
    base_info: BaseModelInfo,
    lora_a: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    monkeypatch.setattr("adapters.sql_registry.insert_version", failing_insert)
    with pytest.raises(RegistryError):
        registry.import_adapter(lora_a, "copy", base=base_info, max_rank=MAX_RANK)
    assert registry.store.verify(kept.sha256)


def test_files_changing_during_import_are_refused(
    registry: SqlRegistry,
    base_info: BaseModelInfo,
    lora_a: Path,
    lora_b: Path,
    copy_of: Callable[[Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = copy_of(lora_a)
    real_validate = validate_artifact

    def validate_then_overwrite(*args: object, **kwargs: object) -> object:
        info = real_validate(*args, **kwargs)  # type: ignore[arg-type]
        (folder / WEIGHTS_FILE).write_bytes((lora_b / WEIGHTS_FILE).read_bytes())
        return info

    monkeypatch.setattr("adapters.sql_registry.validate_artifact", validate_then_overwrite)
    with pytest.raises(InvalidArtifact, match="changed while they were imported"):
        registry.import_adapter(folder, "support", base=base_info, max_rank=MAX_RANK)
    assert registry.store.digests() == [] and registry.list_adapters() == []


def test_bad_metrics_and_unknown_owner(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path
) -> None:
    before = _state(registry)
    with pytest.raises(InvalidInput) as err:
        registry.import_adapter(
            lora_a, "x", base=base_info, max_rank=MAX_RANK, metrics={"f": object()}
        )
    assert err.value.param == "metrics"
    with pytest.raises(NotFound, match="tenant 'ghost' not found"):
        registry.import_adapter(lora_a, "x", base=base_info, max_rank=MAX_RANK, owner="ghost")
    assert _state(registry) == before


def test_same_content_under_two_names_is_stored_once(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path
) -> None:
    one = registry.import_adapter(lora_a, "one", base=base_info, max_rank=MAX_RANK)
    two = registry.import_adapter(lora_a, "two", base=base_info, max_rank=MAX_RANK)
    assert one.sha256 == two.sha256 and registry.store.digests() == [one.sha256]
    registry.delete_version("one", 1)
    assert registry.store.verify(two.sha256)  # still used by two@v1
    registry.delete_version("two", 1)
    assert registry.store.digests() == []


def test_versions_are_never_reused(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path, lora_b: Path
) -> None:
    registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    registry.import_adapter(lora_b, "support", base=base_info, max_rank=MAX_RANK)
    registry.delete_version("support", 2)
    assert registry.get_version("support").version == 1
    assert registry.import_adapter(lora_b, "support", base=base_info, max_rank=16).version == 3
    registry.delete_version("support", 1)
    registry.delete_version("support", 3)
    with pytest.raises(NotFound, match="adapter 'support' not found"):
        registry.get_version("support")
    assert registry.import_adapter(lora_a, "support", base=base_info, max_rank=16).version == 4


def test_delete_and_get_unknown_versions(registry: SqlRegistry) -> None:
    with pytest.raises(NotFound, match="'support@v1' not found"):
        registry.delete_version("support", 1)
    with pytest.raises(NotFound):
        registry.get_version("support", 1)
    with pytest.raises(InvalidName):
        registry.get_version("support", 0)


def test_registry_survives_reopening(
    registry: SqlRegistry,
    open_another: Callable[[], SqlRegistry],
    base_info: BaseModelInfo,
    lora_a: Path,
) -> None:
    version = registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK)
    tenant, key = registry.create_tenant("acme", "ACME Corp")
    registry.set_mode("acme", "chat", "support@v1", retrieval={"top_k": 4})
    registry.close()
    reopened = open_another()
    assert reopened.get_version("support", 1) == version
    assert reopened.tenant_for_key(key) == tenant
    mode = reopened.get_mode("acme", "chat")
    assert (mode.target, mode.retrieval, mode.is_default) == ("support@v1", {"top_k": 4}, True)


def test_concurrent_imports_get_distinct_versions(
    registry: SqlRegistry,
    open_another: Callable[[], SqlRegistry],
    base_info: BaseModelInfo,
    lora_a: Path,
    lora_b: Path,
) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    other = open_another()

    def run(folder: Path, shared: SqlRegistry) -> None:
        try:
            mine = shared.import_adapter(folder, "busy", base=base_info, max_rank=MAX_RANK).version
            results.append(mine)
            assert shared.get_version("busy").version >= mine  # a thread sees its own import
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [  # two registry objects on one database, each used from three threads
        threading.Thread(target=run, args=(folder, shared))
        for folder, shared in zip((lora_a, lora_b) * 3, (registry, other) * 3, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert len(registry.store.digests()) == 2
    assert all(registry.store.verify(d) for d in registry.store.digests())


def test_owner_is_the_same_for_every_version(
    registry: SqlRegistry, base_info: BaseModelInfo, lora_a: Path, lora_b: Path
) -> None:
    registry.create_tenant("acme")
    registry.create_tenant("globex")
    registry.import_adapter(lora_a, "support", base=base_info, max_rank=MAX_RANK, owner="acme")
    with pytest.raises(Conflict, match="owned by tenant 'acme'"):
        registry.import_adapter(
            lora_b, "support", base=base_info, max_rank=MAX_RANK, owner="globex"
        )
    with pytest.raises(Conflict):
        registry.import_adapter(lora_b, "support", base=base_info, max_rank=MAX_RANK)
    v2 = registry.import_adapter(lora_b, "support", base=base_info, max_rank=MAX_RANK, owner="acme")
    assert v2.version == 2 and v2.owner == "acme"


def test_config_file_name_in_missing_config_error(
    registry: SqlRegistry,
    base_info: BaseModelInfo,
    lora_a: Path,
    copy_of: Callable[[Path], Path],
) -> None:
    folder = copy_of(lora_a)
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(InvalidArtifact) as err:
        registry.import_adapter(folder, "support", base=base_info, max_rank=MAX_RANK)
    assert err.value.param == CONFIG_FILE
