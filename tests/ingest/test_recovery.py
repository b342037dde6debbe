"""Recovery: a crash between writing a document's new chunks and removing its stale ones
(an injected exception, a SIGKILLed process), or a missing chunk, is repaired by a rerun
that ends with exactly the right chunks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.knowledge import KnowledgeBase
from ingest.models import SourceDocument
from tests.ingest.probes import long_text, stored


def test_crash_between_upsert_and_stale_removal_is_repaired_by_a_rerun(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb.ingest_documents("acme", [SourceDocument("doc", long_text("old", 10))])
    old_count = len(stored(kb, "acme", "doc"))

    def crash(*args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(kb.store, "delete_stale", crash)
    new = SourceDocument("doc", long_text("new", 3))
    with pytest.raises(RuntimeError, match="power cut"):
        kb.ingest_documents("acme", [new])
    payloads = stored(kb, "acme", "doc")
    assert len(payloads) == old_count  # new chunks 0..n-1 written over, old tail still there
    assert len({p["content_hash"] for p in payloads}) == 2
    assert kb.search("acme", "quetzalcoatlus")[0].doc_id == "doc"

    monkeypatch.undo()
    report = kb.ingest_documents("acme", [new])
    assert report.updated == ["doc"]
    payloads = stored(kb, "acme", "doc")
    expected = len(kb.chunker.chunk(new))
    assert sorted(p["chunk_index"] for p in payloads) == list(range(expected))
    assert {p["content_hash"] for p in payloads} == {new.content_hash}
    assert len(kb.list_documents("acme")) == 1


def test_a_document_missing_a_chunk_is_rewritten(kb: KnowledgeBase) -> None:
    doc = SourceDocument("doc", long_text("x", 6))
    kb.ingest_documents("acme", [doc])
    count = len(stored(kb, "acme", "doc"))
    victim = next(p for p in kb.store.scroll("acme") if p.payload["chunk_index"] == 1)
    kb.store._delete(
        [("tenant", "acme")], [p.id for p in kb.store.scroll("acme") if p.id != victim.id]
    )
    assert len(stored(kb, "acme", "doc")) == count - 1
    report = kb.ingest_documents("acme", [doc])
    assert report.updated == ["doc"]  # not "unchanged": it was incomplete
    assert len(stored(kb, "acme", "doc")) == count


KILLED_INGEST = """
import sys, time
from ingest.knowledge import open_knowledge_base
from ingest.models import SourceDocument
from ingest.store.base import Store
from lorag.settings import Settings

def stall(self, *args):  # the new chunks are upserted: announce it and wait to be killed
    print("UPSERTED", flush=True)
    time.sleep(120)

Store.delete_stale = stall
kb = open_knowledge_base(Settings(data_dir=sys.argv[1]))
kb.ingest_documents("acme", [SourceDocument("doc", sys.stdin.read())])
"""


def test_a_killed_ingest_is_repaired_by_a_rerun(open_kb, tmp_path: Path) -> None:
    """SIGKILL after the new chunks are written and before stale removal (no flush, no close)."""
    data = tmp_path / "killed"
    kb = open_kb("edge", data_dir=data)
    kb.ingest_documents("acme", [SourceDocument("doc", long_text("old", 10))])
    old_count = len(stored(kb, "acme", "doc"))
    kb.close()

    new = SourceDocument("doc", long_text("new", 3))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_INGEST, str(data)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        process.stdin.write(new.text)
        process.stdin.close()
        assert process.stdout.readline().strip() == "UPSERTED"
    finally:
        process.kill()
        process.wait(timeout=30)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL

    kb = open_kb("edge", data_dir=data)
    payloads = stored(kb, "acme", "doc")
    assert len(payloads) == old_count  # the WAL kept the new chunks; the stale tail remains
    assert {p["content_hash"] for p in payloads} == {
        new.content_hash,
        SourceDocument("doc", long_text("old", 10)).content_hash,
    }
    report = kb.ingest_documents("acme", [new])
    assert report.updated == ["doc"]
    payloads = stored(kb, "acme", "doc")
    assert sorted(p["chunk_index"] for p in payloads) == list(range(len(kb.chunker.chunk(new))))
    assert {p["content_hash"] for p in payloads} == {new.content_hash}
