"""Folders written whole or not at all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_folder_atomically"]


def write_folder_atomically(target: Path, fill: Callable[[Path], object]) -> Path:
    """Create `target` by filling a temporary sibling folder and renaming it into place (an
    existing `target` is replaced): a crash leaves the old folder or none, never half a one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
