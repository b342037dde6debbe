"""Full disks for the fault tests: a small tmpfs mounted over a folder, and a file that fills
its file system (all of it, or all but a given number of bytes)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

_BLOCK = 65536


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[None]:
    """A tmpfs of `size` ("1m", "64m") mounted on `folder` while the context lasts; the test
    is skipped where mounting is not allowed (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, size: str) -> None:
    """Grow (or shrink) the tmpfs mounted on `folder` to `size`."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def fill(folder: Path, *, leave: int = 0, name: str = ".filler") -> Path:
    """Write a file in `folder` until its file system has only `leave` bytes free (0: until
    it is full, ENOSPC); the file is returned (unlink it to free the space)."""
    filler = folder / name
    with filler.open("wb") as out:
        try:
            while (left := free_bytes(folder) - leave) > 0:
                out.write(b"\0" * min(_BLOCK, left))
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
