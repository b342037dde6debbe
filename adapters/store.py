"""The content-addressed adapter store: one read-only folder per artifact digest.

Layout under the root (`settings.adapters_dir`):

    sha256/<digest>/adapter_config.json      the artifact, as validated
    sha256/<digest>/adapter_model.safetensors
    tmp/                                     staging for puts and removals (same filesystem)

A put copies exactly the two artifact files into a staging folder, hashing while it copies,
and renames the folder into place: a folder under `sha256/` is always complete, and the same
content is stored once. Digests are checked to be 64 hex digits, so no name leaves the root.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from adapters.artifact_files import ARTIFACT_FILES, artifact_digest, folder_digest
from adapters.errors import InvalidArtifact, InvalidName, NotFound

__all__ = ["AdapterStore"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class AdapterStore:
    """Artifact folders addressed by their digest (see `adapters.artifact_files`)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._objects = self.root / "sha256"
        self._staging = self.root / "tmp"

    def put(self, folder: Path) -> tuple[str, Path]:
        """Copy the artifact files of `folder` into the store; return (digest, stored folder)."""
        folder = Path(folder)
        self._objects.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="put-", dir=self._staging))
        try:
            file_digests = {name: _copy_hashing(folder, name, staging) for name in ARTIFACT_FILES}
            digest = artifact_digest(file_digests)
            target = self._objects / digest
            if target.is_dir() and not self.verify(digest):  # damaged copy: replace it
                self.remove(digest)
            if not target.is_dir():
                staging.chmod(0o755)
                try:
                    staging.rename(target)
                except OSError:
                    if not target.is_dir():  # not a concurrent put of the same content
                        raise
                _fsync_dir(self._objects)
            return digest, target
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def path(self, digest: str) -> Path:
        """The folder of `digest` (it may not exist)."""
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise InvalidName(f"{digest!r} is not a sha256 hex digest", param="sha256")
        return self._objects / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_dir()

    def remove(self, digest: str) -> bool:
        """Remove the folder of `digest`; False if it was not there."""
        target = self.path(digest)
        if not target.is_dir():
            return False
        self._staging.mkdir(parents=True, exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix=f"rm-{digest[:12]}-", dir=self._staging))
        try:
            target.rename(trash / digest)
        except FileNotFoundError:  # removed concurrently
            return False
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return True

    def verify(self, digest: str) -> bool:
        """Re-hash the stored files: True if they hold exactly the content `digest` names."""
        target = self.path(digest)
        if not target.is_dir():
            raise NotFound(f"artifact {digest} is not in the store", param="sha256")
        return folder_digest(target) == digest

    def digests(self) -> list[str]:
        """Every digest in the store, sorted."""
        if not self._objects.is_dir():
            return []
        return sorted(p.name for p in self._objects.iterdir() if _DIGEST.fullmatch(p.name))


def _copy_hashing(folder: Path, name: str, staging: Path) -> str:
    source = folder / name
    hasher = hashlib.sha256()
    try:
        with open(source, "rb") as src, open(staging / name, "xb") as dst:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except FileNotFoundError as exc:
        raise InvalidArtifact(f"{folder} has no {name}", param=name) from exc
    os.chmod(staging / name, 0o444)
    return hasher.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
