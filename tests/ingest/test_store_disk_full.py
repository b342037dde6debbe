"""The knowledge store's own disk fills up during an ingest (the qdrant-edge folder on a
small tmpfs): the job fails with a plain reason, nothing indexed is lost, searches go on,
the worker lives and, once space is freed, the next job succeeds; the store reopens whole.

qdrant-edge dies of SIGBUS when it writes on a full disk (`ingest.store.disk_space`), so the
ingest runs in a child process (`tests/ingest/disk_full_scenario.py`): without the free-space
guard this test fails on the child's death instead of taking pytest down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.errors import StoreFull
from ingest.knowledge import KnowledgeBase
from ingest.store.disk_space import DiskSpace
from ingest.store.edge import EdgeStore
from tests.ingest.disk_faults import resize, tmpfs
from tests.ingest.test_store_contract import DIM, dense, point, query_sparse

REPO = Path(__file__).resolve().parents[2]
DISK = "64m"
"""The knowledge folder's tmpfs: the new shard takes ~10 MiB of it."""
REOPEN_DISK = "256m"
"""On tmpfs, reading a memory map allocates its pages (a disk's holes stay free): reopening
reads the WAL's two 32 MiB segments whole, so the restart gets a larger disk."""
MARGIN_MB = 8
HEADROOM_MB = 4
"""Free above the margin when the big job starts: a hundred of its documents, not all."""


def test_the_store_disk_filling_up_fails_the_job_and_loses_nothing(
    open_kb: Callable[..., KnowledgeBase], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with tmpfs(data / "knowledge", DISK):
        scenario = ["-m", "tests.ingest.disk_full_scenario", str(data), str(MARGIN_MB)]
        child = subprocess.run(
            [sys.executable, *scenario, str(HEADROOM_MB)],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        died = (
            f" (killed by {signal.Signals(-child.returncode).name})" if child.returncode < 0 else ""
        )
        assert child.returncode == 0, f"the ingest process died{died}:\n{child.stderr[-3000:]}"
        seen = json.loads(child.stdout.strip().splitlines()[-1])

        assert seen["first"] == {"status": "succeeded", "error": None}
        big = seen["big"]
        assert big["status"] == "failed"
        assert "the knowledge base's disk is full" in big["error"]
        assert str(tmp_path) not in big["error"] and "/" not in big["error"]
        assert seen["free_mb_after_big"] >= MARGIN_MB  # refused before the engine hit ENOSPC
        assert seen["search_while_full"] == "otters"  # the first job's documents are all there
        assert seen["search_at_brim"] == "herons"  # searches answer with not one byte free
        assert seen["documents_while_full"] >= len(["otters", "herons"])
        assert "cannot be recorded" in seen["submit_at_brim"]
        assert seen["big_again"] == big  # the worker lives; the job is refused the same way
        assert seen["after_freeing"] == {"status": "succeeded", "error": None}
        assert seen["search_after_freeing"] == "newts"

        resize(data / "knowledge", REOPEN_DISK)
        kb = open_kb("edge", data_dir=data, knowledge_min_free_mb=MARGIN_MB)  # a restart
        documents = {doc.doc_id for doc in kb.list_documents("acme")}
        assert {"otters", "herons", "newts"} <= documents
        assert kb.search("acme", "herons fishing", top_k=1)[0].doc_id == "herons"
        assert kb.search("acme", "otters sleeping", top_k=1)[0].doc_id == "otters"
        kb.close()


def test_the_edge_store_refuses_writes_below_its_margin_and_still_reads(tmp_path: Path) -> None:
    """The guard alone, on any disk: a store whose margin is more than the disk has free
    writes nothing (upsert, delete, payload, optimize), answers 503 without a path, and keeps
    serving reads; opening needs the margin too."""
    store = EdgeStore(tmp_path / "edge", DIM, min_free_bytes=0)
    store.upsert("acme", [point("kept", 0, "the warranty lasts thirty six months", 1)])
    store._space = DiskSpace(store.path, store._space.free_bytes() + 2**30)  # a GiB short
    writes = {
        "upsert": lambda: store.upsert("acme", [point("more", 0, "tides follow the moon", 2)]),
        "delete": lambda: store.delete_documents("acme", ["kept"]),
        "set_payload": lambda: store.set_payload("acme", "kept", {"scope": "x"}),
        "optimize": store.optimize,
    }
    for name, write in writes.items():
        with pytest.raises(StoreFull) as refused:
            write()
        assert refused.value.status == 503, name
        assert "disk is full" in refused.value.message and "/" not in refused.value.message
    assert store.count("acme") == 1
    hits = store.query("acme", dense=dense(1), sparse=query_sparse("warranty months"), limit=1)
    assert [hit.payload["doc_id"] for hit in hits] == ["kept"]
    assert "scope" not in hits[0].payload
    store.close()
    with pytest.raises(StoreFull):
        EdgeStore(tmp_path / "edge", None, min_free_bytes=2**62)
    again = EdgeStore(tmp_path / "edge", None, min_free_bytes=0)
    assert again.count("acme") == 1
    again.close()
