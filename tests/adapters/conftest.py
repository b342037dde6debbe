"""Fixtures for the adapters tests: real peft adapters (built once, cached) and a fresh registry.

Adapters are made by `tests.factories` into pytest's cache folder, so a second test run
reuses them; the bundled base model comes from the root conftest's `base_model_dir`.

`registry` is the contract's fixture: every test that takes it runs once on each backend,
SQLite (a file in `tmp_path`) and PostgreSQL (an empty schema on the session's server), both
with their artifact store in `tmp_path / "adapters"`.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.from_settings import open_registry
from adapters.sql_registry import SqlRegistry
from adapters.store import AdapterStore
from lorag.base_model import BaseModelInfo
from lorag.settings import BUNDLED_MODEL_NAME as BASE_NAME
from lorag.settings import Settings
from tests.factories import make_ia3_adapter, make_lora_adapter, make_tiny_llama

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="session")
def made_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where factory-made artifacts are cached between test runs (pytest's cache folder)."""
    cache = getattr(request.config, "cache", None)
    if cache is None:  # -p no:cacheprovider
        return tmp_path_factory.mktemp("factory")
    return Path(cache.mkdir("lorag-adapters-factory"))


@pytest.fixture(scope="session")
def base_info(base_model_dir: Path) -> BaseModelInfo:
    return BaseModelInfo.from_folder(base_model_dir, name=BASE_NAME)


@pytest.fixture(scope="session")
def lora_a(base_model_dir: Path, made_dir: Path) -> Path:
    """Rank 8 on q_proj/v_proj, seed 0."""
    return make_lora_adapter(base_model_dir, made_dir / "lora-a", rank=8, seed=0)


@pytest.fixture(scope="session")
def lora_b(base_model_dir: Path, made_dir: Path) -> Path:
    """Same shape as lora_a, other weights (seed 1)."""
    return make_lora_adapter(base_model_dir, made_dir / "lora-b", rank=8, seed=1)


@pytest.fixture(scope="session")
def lora_wide(base_model_dir: Path, made_dir: Path) -> Path:
    """Rank 4 on every linear layer."""
    return make_lora_adapter(
        base_model_dir, made_dir / "lora-wide", rank=4, seed=2, targets=ALL_LINEAR
    )


@pytest.fixture(scope="session")
def lora_other_base(made_dir: Path) -> Path:
    """A real LoRA made for a tiny Llama with hidden size 64: wrong base for the bundled model."""
    tiny = make_tiny_llama(made_dir / "tiny-llama", hidden_size=64, layers=2)
    return make_lora_adapter(tiny, made_dir / "lora-tiny", rank=8, seed=0)


@pytest.fixture(scope="session")
def ia3(base_model_dir: Path, made_dir: Path) -> Path:
    """A real peft IA3 adapter (peft_type IA3): not a LoRA."""
    return make_ia3_adapter(base_model_dir, made_dir / "ia3")


@pytest.fixture
def copy_of(tmp_path: Path):
    """copy_of(folder) -> a private, writable copy of an artifact folder to damage."""
    counter = itertools.count()

    def copy(folder: Path) -> Path:
        target = tmp_path / f"copy-{folder.name}-{next(counter)}"
        shutil.copytree(folder, target)
        return target

    return copy


@pytest.fixture
def store(tmp_path: Path) -> AdapterStore:
    return AdapterStore(tmp_path / "adapters")


BACKENDS = ("sqlite", "postgresql")
TABLES = ("tenants", "adapter_names", "adapter_versions", "modes", "mode_history")


@pytest.fixture(params=BACKENDS)
def registry_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings naming one backend (each in turn): data dir `tmp_path`, and for PostgreSQL
    an empty registry of its own on the session's server (dropped afterwards)."""
    if request.param == "sqlite":
        yield Settings(data_dir=tmp_path, registry_url=None)
        return
    server = request.getfixturevalue("postgres")
    url = server.new_registry_url()
    yield Settings(data_dir=tmp_path, registry_url=url)
    server.drop(url)


@pytest.fixture
def open_another(registry_settings: Settings) -> Iterator[Callable[[], SqlRegistry]]:
    """open_another() -> a new registry object on the same database and store, as another
    process would open it (each is closed at the end of the test)."""
    opened: list[SqlRegistry] = []

    def open_one() -> SqlRegistry:
        opened.append(open_registry(registry_settings))
        return opened[-1]

    yield open_one
    for registry in opened:
        registry.close()


@pytest.fixture
def registry(open_another: Callable[[], SqlRegistry]) -> SqlRegistry:
    return open_another()


@pytest.fixture
def database_text(registry_settings: Settings) -> Callable[[], str]:
    """database_text() -> every row of the registry's tables, as text."""

    def dump() -> str:
        if registry_settings.registry_url is None:
            # the dump reads the WAL too, where fresh rows live
            with contextlib.closing(sqlite3.connect(registry_settings.registry_path)) as conn:
                return "\n".join(conn.iterdump())
        import psycopg

        url = registry_settings.registry_url.get_secret_value()
        with psycopg.connect(url) as conn:
            return "\n".join(
                str(row[0])
                for table in TABLES
                for row in conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t")
            )

    return dump
