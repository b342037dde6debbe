"""AdapterStore: content-addressed folders, written atomically, re-hashable, confined to root."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.artifact_files import ARTIFACT_FILES, CONFIG_FILE, WEIGHTS_FILE
from adapters.errors import InvalidArtifact, InvalidName, NotFound
from adapters.store import AdapterStore


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_put_copies_exactly_the_two_files(lora_a: Path, store: AdapterStore) -> None:
    assert (lora_a / "README.md").exists()  # peft writes a model card: it is not copied
    digest, path = store.put(lora_a)
    assert path == store.root / "sha256" / digest == store.path(digest)
    assert sorted(p.name for p in path.iterdir()) == sorted(ARTIFACT_FILES)
    for name in ARTIFACT_FILES:
        assert (path / name).read_bytes() == (lora_a / name).read_bytes()
        assert not (path / name).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert store.exists(digest) and store.verify(digest)
    assert list((store.root / "tmp").iterdir()) == []  # no staging left behind


def test_same_content_is_stored_once(
    lora_a: Path, lora_b: Path, store: AdapterStore, copy_of: Callable[[Path], Path]
) -> None:
    first, path = store.put(lora_a)
    again, path_again = store.put(copy_of(lora_a))
    other, _ = store.put(lora_b)
    assert (first, path) == (again, path_again)
    assert other != first
    assert store.digests() == sorted([first, other])


def test_verify_detects_tampering_and_put_repairs_it(lora_a: Path, store: AdapterStore) -> None:
    digest, path = store.put(lora_a)
    weights = path / WEIGHTS_FILE
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert not store.verify(digest)
    assert store.put(lora_a) == (digest, path)
    assert store.verify(digest)


def test_verify_refuses_extra_files(lora_a: Path, store: AdapterStore) -> None:
    digest, path = store.put(lora_a)
    (path / "extra.bin").write_bytes(b"x")
    assert not store.verify(digest)


def test_remove(lora_a: Path, store: AdapterStore) -> None:
    digest, path = store.put(lora_a)
    assert store.remove(digest)
    assert not path.exists() and not store.exists(digest)
    assert not store.remove(digest)
    assert _tree(store.root) == ["sha256", "tmp"]
    with pytest.raises(NotFound):
        store.verify(digest)


@pytest.mark.parametrize(
    "digest", ["../../etc", "..", "", "A" * 64, "a" * 63, "a" * 65, "/" + "a" * 63, "a" * 63 + "/"]
)
def test_digests_never_name_a_path_outside(store: AdapterStore, digest: str) -> None:
    for call in (store.path, store.exists, store.remove, store.verify):
        with pytest.raises(InvalidName):
            call(digest)


def test_put_of_an_incomplete_folder_leaves_nothing(
    lora_a: Path, store: AdapterStore, copy_of: Callable[[Path], Path]
) -> None:
    folder = copy_of(lora_a)
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(InvalidArtifact) as err:
        store.put(folder)
    assert err.value.param == CONFIG_FILE
    assert _tree(store.root) == ["sha256", "tmp"]
