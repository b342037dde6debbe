"""The `Store` contract, run against both backends: qdrant-edge (real folder) and
qdrant-client ":memory:". Vectors are small synthetic dense vectors plus real BM25 sparse
vectors from qdrant-edge's `Bm25`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_edge import Bm25

from ingest.errors import (
    InvalidFilter,
    InvalidTenant,
    StoreIncompatible,
    StoreLocked,
    StoreUnavailable,
)
from ingest.store.base import Store
from ingest.store.edge import EdgeStore
from ingest.store.points import ChunkPoint, SparseVec, point_id
from ingest.store.server import QdrantStore

DIM = 8
BM25 = Bm25()


def dense(seed: int) -> list[float]:
    vector = np.random.default_rng(seed).normal(size=DIM)
    return (vector / np.linalg.norm(vector)).tolist()


def sparse(text: str) -> SparseVec:
    vector = BM25.embed_document(text)
    return SparseVec(list(vector.indices), list(vector.values))


def query_sparse(text: str) -> SparseVec:
    vector = BM25.embed_query(text)
    return SparseVec(list(vector.indices), list(vector.values))


def point(doc_id: str, index: int, text: str, seed: int, **payload: object) -> ChunkPoint:
    body = {"text": text, "source": f"{doc_id}.txt", "metadata": {}, **payload}
    return ChunkPoint(doc_id, index, dense(seed), sparse(text), body)


def make_store(kind: str, path: Path) -> Store:
    if kind == "edge":
        return EdgeStore(path / "edge", DIM)
    return QdrantStore(":memory:", "contract", DIM)


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made = make_store(request.param, tmp_path)
    yield made
    made.close()


TEXTS = [
    "the banana bread recipe needs ripe bananas",
    "a bicycle chain needs oil every month",
    "tides follow the moon and the sun",
    "python list comprehensions build lists",
    "the warranty lasts thirty six months",
]


def fill(store: Store, tenant: str, seed_offset: int = 0) -> None:
    store.upsert(
        tenant,
        [point(f"doc{i}", 0, text, i + seed_offset) for i, text in enumerate(TEXTS)],
    )


def test_dense_sparse_and_hybrid_queries_find_the_right_point(store: Store) -> None:
    fill(store, "a")
    hits = store.query("a", dense=dense(3), limit=3)
    assert hits[0].payload["doc_id"] == "doc3"
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].id == point_id("a", "doc3", 0)

    hits = store.query("a", sparse=query_sparse("warranty thirty"), limit=3)
    assert [h.payload["doc_id"] for h in hits] == ["doc4"]  # only doc4 has those terms

    hits = store.query("a", dense=dense(1), sparse=query_sparse("bicycle chain"), limit=5)
    assert hits[0].payload["doc_id"] == "doc1"  # first in both lists
    assert hits[0].score == pytest.approx(1.0)  # the best of both lists: 1.0 each, averaged
    assert all(0 <= h.score <= 1 for h in hits)


def test_point_ids_are_deterministic_and_upsert_replaces(store: Store) -> None:
    store.upsert("a", [point("doc", 0, "first version", 1)])
    store.upsert("a", [point("doc", 0, "second version", 2)])
    points = list(store.scroll("a"))
    assert len(points) == 1
    assert points[0].id == point_id("a", "doc", 0)
    assert points[0].payload["text"] == "second version"
    assert point_id("a", "doc", 0) != point_id("b", "doc", 0)


def test_every_method_is_confined_to_its_tenant(store: Store) -> None:
    fill(store, "a")
    fill(store, "b", seed_offset=100)  # same doc ids, other vectors
    for tenant in ("a", "b"):
        assert store.count(tenant) == len(TEXTS)
        assert {p.payload["tenant"] for p in store.scroll(tenant)} == {tenant}

    for kwargs in (
        {"dense": dense(103)},  # b's doc3 vector exactly
        {"sparse": query_sparse("banana bicycle tides python warranty")},
        {"dense": dense(103), "sparse": query_sparse("python")},
    ):
        hits = store.query("a", limit=20, **kwargs)
        assert hits and {h.payload["tenant"] for h in hits} == {"a"}
        assert all(h.id == point_id("a", h.payload["doc_id"], 0) for h in hits)

    store.set_payload("a", "doc0", {"scope": "changed"})
    assert store.count("a", filter={"scope": "changed"}) == 1
    assert store.count("b", filter={"scope": "changed"}) == 0

    store.delete_stale("a", "doc1", 0)  # keep none of a's doc1
    store.delete_documents("a", ["doc2"])
    assert store.count("a") == len(TEXTS) - 2
    assert store.count("b") == len(TEXTS)
    assert store.count("b", filter={"doc_id": ["doc1", "doc2"]}) == 2


def test_tenant_cannot_be_forged_or_invalid(store: Store) -> None:
    fill(store, "a")
    with pytest.raises(InvalidFilter):
        store.query("b", dense=dense(1), filter={"tenant": "a"})
    with pytest.raises(InvalidFilter):
        store.count("b", filter={"tenant.x": "a"})
    with pytest.raises(InvalidTenant) as raised:
        store.count("A/../b")
    assert raised.value.status == 400
    # a payload field named tenant is overwritten with the tenant the call names
    store.upsert("b", [point("x", 0, "forged", 7, tenant="a")])
    assert store.count("a") == len(TEXTS)
    assert [p.payload["tenant"] for p in store.scroll("b")] == ["b"]


def test_delete_stale_keeps_exactly_the_first_chunks(store: Store) -> None:
    store.upsert("a", [point("doc", i, f"chunk {i}", i) for i in range(5)])
    store.upsert("a", [point("other", 0, "other doc", 9)])
    store.delete_stale("a", "doc", 2)
    assert sorted(
        p.payload["chunk_index"] for p in store.scroll("a", filter={"doc_id": "doc"})
    ) == [
        0,
        1,
    ]
    assert store.count("a", filter={"doc_id": "other"}) == 1


def test_filters_on_payload_and_metadata(store: Store) -> None:
    store.upsert(
        "a",
        [
            point("d1", 0, "alpha text", 1, metadata={"lang": "de", "year": 2024}),
            point("d2", 0, "alpha text", 2, metadata={"lang": "en", "year": 2023}),
            point("d3", 0, "alpha text", 3, metadata={"lang": "en", "year": 2024}),
        ],
    )
    by = {
        "source": {"source": "d2.txt"},
        "metadata": {"lang": "en", "year": 2024},
        "explicit": {"metadata.lang": "de"},
        "any": {"doc_id": ["d1", "d3"]},
    }
    found = {
        name: sorted(h.payload["doc_id"] for h in store.query("a", dense=dense(1), filter=f))
        for name, f in by.items()
    }
    assert found == {
        "source": ["d2"],
        "metadata": ["d3"],
        "explicit": ["d1"],
        "any": ["d1", "d3"],
    }
    for bad in ({"": 1}, {"lang": {"$ne": 1}}, {"lang": []}, {"lang": [1, "x"]}, ["lang"]):
        with pytest.raises(InvalidFilter):
            store.query("a", dense=dense(1), filter=bad)  # type: ignore[arg-type]


def test_sparse_idf_is_computed_within_the_tenant(store: Store) -> None:
    """Another tenant's documents must not change a tenant's BM25 scores (no leak)."""
    store.upsert("a", [point(f"a{i}", 0, f"common words number {i}", i) for i in range(9)])
    store.upsert("a", [point("rare", 0, "common words with widget", 50)])
    before = store.query("a", sparse=query_sparse("widget"), limit=3)
    store.upsert("b", [point(f"b{i}", 0, f"widget widget {i}", 200 + i) for i in range(50)])
    after = store.query("a", sparse=query_sparse("widget"), limit=3)
    assert [h.payload["doc_id"] for h in after] == ["rare"]
    assert after[0].score == pytest.approx(before[0].score, rel=1e-5)


def test_scroll_exports_vectors(store: Store) -> None:
    store.upsert("a", [point("doc", 0, "banana bread", 4)])
    (exported,) = list(store.scroll("a", with_vectors=True))
    assert exported.dense == pytest.approx(dense(4), abs=1e-5)
    assert exported.sparse is not None
    assert sorted(exported.sparse.indices) == sorted(sparse("banana bread").indices)


def test_scroll_pages_through_everything(store: Store) -> None:
    store.upsert("a", [point("doc", i, f"chunk {i}", i) for i in range(25)])
    indexes = [
        p.payload["chunk_index"] for p in store.scroll("a", page_size=7, fields=["chunk_index"])
    ]
    assert sorted(indexes) == list(range(25))


def test_backends_agree(tmp_path: Path) -> None:
    """Congruence: the same writes and queries give the same results on both backends."""
    stores = [make_store("edge", tmp_path), make_store("memory", tmp_path)]
    try:
        results = []
        for made in stores:
            fill(made, "a")
            fill(made, "b", seed_offset=100)
            made.delete_stale("a", "doc4", 0)
            results.append(
                [
                    [h.id for h in made.query("a", dense=dense(2), limit=4)],
                    [h.id for h in made.query("a", sparse=query_sparse("bicycle moon"), limit=4)],
                    [
                        (h.id, round(h.score or 0, 6))
                        for h in made.query(
                            "a", dense=dense(2), sparse=query_sparse("moon"), limit=2
                        )
                    ],
                ]
            )
        assert results[0] == results[1]
    finally:
        for made in stores:
            made.close()


def test_edge_folder_is_locked_persistent_and_checked(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "edge", DIM)
    first.upsert("a", [point("doc", 0, "kept after reopen", 1)])
    with pytest.raises(StoreLocked) as raised:
        EdgeStore(tmp_path / "edge", DIM)
    assert raised.value.status == 409
    assert "in use by another process" in raised.value.message
    first.close()

    again = EdgeStore(tmp_path / "edge", None)  # vector size read from the folder
    assert again.dim == DIM
    assert [p.payload["text"] for p in again.scroll("a")] == ["kept after reopen"]
    again.close()
    with pytest.raises(StoreIncompatible):
        EdgeStore(tmp_path / "edge", DIM * 2)


def test_an_unreachable_qdrant_server_is_unavailable() -> None:
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable) as raised:
        QdrantStore("http://127.0.0.1:9", "chunks", DIM, timeout=5)
    assert raised.value.status == 503
    assert "does not answer" in raised.value.message
    assert time.perf_counter() - started < 30
