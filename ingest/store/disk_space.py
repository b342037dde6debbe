"""`DiskSpace`: the embedded store refuses a write before it could fill its disk.

qdrant-edge (0.9.0) writes its WAL and its segments through memory maps. On a full disk such
a write does not fail with an error: the kernel cannot back the page and kills the whole
process with SIGBUS (probed on ext4 and tmpfs: the gateway dies in the middle of an upsert,
every tenant's requests with it). The shard survives: once space is freed it reopens with
every write acknowledged before the crash. Opening a shard on a full disk dies the same way,
or fails with "No space left on device".

So the embedded store checks the free space of its folder's file system before each write
(and before opening), and refuses it (`StoreFull`, 503) while less than the margin
(`LORAG_KNOWLEDGE_MIN_FREE_MB`) plus the write's own estimate would be left. The engine
never reaches ENOSPC through lorag; reads need no space, so searches go on meanwhile. Another
process filling the disk between the check and the write can still crash the gateway: keep
the knowledge folder on a volume of its own, or watch its free space. On tmpfs even reading a
memory map allocates its pages: opening a shard there populates the WAL's two 32 MiB
segments, so a tmpfs needs ~64 MiB free to open the store (a disk's sparse files need not).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import StoreFull
from ingest.store.base import Row

__all__ = [
    "DISK_FULL",
    "MIB",
    "MIN_FREE_BYTES",
    "WRITE_AMPLIFICATION",
    "DiskSpace",
    "allocated_bytes",
    "upsert_bytes",
]

log = logging.getLogger(__name__)

MIB = 2**20
MIN_FREE_BYTES = 64 * MIB
"""Default free space kept on the store's file system (`LORAG_KNOWLEDGE_MIN_FREE_MB`)."""
DISK_FULL = (
    "the knowledge base's disk is full: nothing more can be written to it until space is "
    "freed on the server (what is indexed stays searchable); retry then"
)
WRITE_AMPLIFICATION = 3
"""Bytes on disk per byte of a point: the WAL entry, the segment's vector and payload
storage, and the pages of their indexes (measured per upsert: 1.1x-2.9x on ext4 and tmpfs)."""


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """The free space a folder's file system must keep for the store to write there."""

    path: Path
    min_free_bytes: int

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the folder's file system."""
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def check(self, need_bytes: int = 0, what: str = "write") -> None:
        """`StoreFull` unless `need_bytes` fit and the margin is still free afterwards."""
        free = self.free_bytes()
        if free - need_bytes < self.min_free_bytes:
            log.error(
                "knowledge store %s refused at %s: %.1f MiB free, %.1f MiB needed + %.1f MiB "
                "kept free (LORAG_KNOWLEDGE_MIN_FREE_MB)",
                what,
                self.path,
                free / MIB,
                need_bytes / MIB,
                self.min_free_bytes / MIB,
            )
            raise StoreFull(DISK_FULL)


def upsert_bytes(rows: Sequence[Row]) -> int:
    """What an upsert of `rows` (id, dense, sparse, payload) may take on disk."""
    size = 0
    for pid, dense, sparse, payload in rows:
        size += len(pid) + 4 * len(dense) + 8 * len(sparse.indices)
        size += len(json.dumps(payload, default=str))
    return WRITE_AMPLIFICATION * size


def allocated_bytes(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (their allocated blocks: the store's
    files are sparse, far smaller than their length)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total
