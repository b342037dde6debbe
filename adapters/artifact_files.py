"""The two files of an adapter artifact (peft's on-disk format) and the digest over them.

The digest of an artifact is the sha256 of the manifest `sha256sum` prints for its two files,
in this fixed order, so it can be checked from a shell:

    cd <artifact folder> && sha256sum adapter_config.json adapter_model.safetensors | sha256sum
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ARTIFACT_FILES", "CONFIG_FILE", "WEIGHTS_FILE", "artifact_digest", "folder_digest"]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ARTIFACT_FILES = (CONFIG_FILE, WEIGHTS_FILE)

_CHUNK = 1 << 20


def artifact_digest(file_digests: Mapping[str, str]) -> str:
    """The artifact digest from the hex sha256 of each file in ARTIFACT_FILES."""
    manifest = "".join(f"{file_digests[name]}  {name}\n" for name in ARTIFACT_FILES)
    return hashlib.sha256(manifest.encode("ascii")).hexdigest()


def folder_digest(folder: Path) -> str | None:
    """The artifact digest of what `folder` holds now; None unless it holds exactly the two
    files (a stray file or a missing one is a damaged folder, whatever the two hash to).
    Re-hashes both files: the store checks its folders with it, a replica its cached copies."""
    if sorted(entry.name for entry in folder.iterdir()) != sorted(ARTIFACT_FILES):
        return None
    return artifact_digest({name: _file_sha256(folder / name) for name in ARTIFACT_FILES})


def _file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
