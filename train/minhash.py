"""Candidate near-duplicate pairs in linear time: MinHash signatures and LSH banding.

Comparing every pair of examples is quadratic (50 million pairs for 10,000 examples), so the
near-duplicate check only compares pairs that MinHash puts in the same bucket. Each text is
a set of shingles (hashed with CRC-32, so the result is the same in every process, unlike
`hash()`); its signature is the minimum of `PERMUTATIONS` random linear hashes over that
set. Two sets agree on one signature entry with probability equal to their Jaccard
similarity, so splitting the signature into `BANDS` bands of `ROWS` rows and bucketing each
band makes a pair a candidate with probability 1 - (1 - J^ROWS)^BANDS: about 0.95 at
J = 0.8, 0.24 at J = 0.6, 0.06 at J = 0.5 (the threshold sits near (1/BANDS)^(1/ROWS) = 0.71).
Candidates are then checked exactly by the caller.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["BANDS", "MAX_BUCKET", "PERMUTATIONS", "ROWS", "candidate_pairs"]

BANDS = 16
ROWS = 8
PERMUTATIONS = BANDS * ROWS
MAX_BUCKET = 100
"""A bucket larger than this (hundreds of answers built on one template) is compared as a
star around its first member, not pair by pair, so the check stays linear."""

_PRIME = np.uint64(4294967311)  # the first prime above 2**32: hashes are CRC-32 values
_SEED = 20240611  # fixed: the same file gives the same candidates every run


def _permutations() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    # a < 2**31 and a CRC below 2**32 keep a * crc + b below 2**64: no overflow in uint64
    a = rng.integers(1, 2**31, size=PERMUTATIONS, dtype=np.uint64)
    b = rng.integers(0, 2**32, size=PERMUTATIONS, dtype=np.uint64)
    return a, b


def _signature(shingles: Iterable[str], a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    hashes = np.fromiter(
        {zlib.crc32(shingle.encode("utf-8")) for shingle in shingles}, dtype=np.uint64
    )
    if not hashes.size:
        return None
    return np.asarray(((np.outer(hashes, a) + b) % _PRIME).min(axis=0))


def candidate_pairs(shingle_sets: Sequence[Iterable[str]]) -> set[tuple[int, int]]:
    """Index pairs `(i, j)`, `i < j`, whose shingle sets MinHash finds likely similar."""
    a, b = _permutations()
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    for index, shingles in enumerate(shingle_sets):
        signature = _signature(shingles, a, b)
        if signature is None:
            continue
        for band in range(BANDS):
            buckets[(band, signature[band * ROWS : (band + 1) * ROWS].tobytes())].append(index)
    pairs: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) > MAX_BUCKET:
            pairs.update((members[0], other) for other in members[1:])
            continue
        for position, first in enumerate(members):
            pairs.update((first, second) for second in members[position + 1 :])
    return pairs
