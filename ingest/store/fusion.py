"""Hybrid search's fused score: each list's scores as a fraction of its best, averaged.

Relative score fusion: a chunk's dense score (cosine) and sparse score (BM25) are each
divided by the best score of their own list, and the fused score is the mean of the two
(0 from a list that did not return the chunk). The best chunk of both lists scores 1.0,
and every score is a fraction of a best one, so "keep what scores at least half the best
hit" means the same in dense, sparse and hybrid search (RRF's rank-only scores cannot say
it: the tenth hit of both lists scores 0.86 of the first whatever their relevance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ingest.store.points import StoredPoint

__all__ = ["fuse"]


def fuse(lists: Sequence[Sequence[StoredPoint]], limit: int) -> list[StoredPoint]:
    """The points of every list, scored by the mean of their relative scores, best first
    (ties: the order the first list gave them, then the next)."""
    fused: dict[str, float] = {}
    points: dict[str, StoredPoint] = {}
    for hits in lists:
        best = max((hit.score or 0.0 for hit in hits), default=0.0)
        for hit in hits:
            points.setdefault(hit.id, hit)
            share = max(hit.score or 0.0, 0.0) / best if best > 0 else 0.0
            fused[hit.id] = fused.get(hit.id, 0.0) + share / len(lists)
    order = {point_id: rank for rank, point_id in enumerate(points)}
    ranked = sorted(points, key=lambda point_id: (-fused[point_id], order[point_id]))
    return [replace(points[point_id], score=fused[point_id]) for point_id in ranked[:limit]]
