"""Fixtures for the adapters tests: real peft adapters (built once, cached) and a fresh registry.

Adapters are made by `tests.factories` into pytest's cache folder, so a second test run
reuses them; the bundled base model comes from the root conftest's `base_model_dir`.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.base_model import BaseModelInfo
from lorag.settings import BUNDLED_MODEL_NAME as BASE_NAME
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


@pytest.fixture
def registry(tmp_path: Path, store: AdapterStore) -> SqliteRegistry:
    return SqliteRegistry(tmp_path / "registry.sqlite3", store)
