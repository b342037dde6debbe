"""The two files of an adapter artifact (peft's on-disk format) and the digest over them.

The digest of an artifact is the sha256 of the manifest `sha256sum` prints for its two files,
in this fixed order, so it can be checked from a shell:

    cd <artifact folder> && sha256sum adapter_config.json adapter_model.safetensors | sha256sum
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

__all__ = ["ARTIFACT_FILES", "CONFIG_FILE", "WEIGHTS_FILE", "artifact_digest"]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ARTIFACT_FILES = (CONFIG_FILE, WEIGHTS_FILE)


def artifact_digest(file_digests: Mapping[str, str]) -> str:
    """The artifact digest from the hex sha256 of each file in ARTIFACT_FILES."""
    manifest = "".join(f"{file_digests[name]}  {name}\n" for name in ARTIFACT_FILES)
    return hashlib.sha256(manifest.encode("ascii")).hexdigest()
