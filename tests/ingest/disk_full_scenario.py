"""The knowledge store's own disk fills up during an ingest: the scenario, run in a child
process by `test_store_disk_full.py`. qdrant-edge writes through memory maps, so without the
free-space guard this process dies of SIGBUS in the middle of the big job (pytest would die
with it in-process); with it, the job fails and everything else goes on.

    python -m tests.ingest.disk_full_scenario DATA_DIR MARGIN_MB HEADROOM_MB

DATA_DIR/knowledge is a small file system of its own (the test mounts a tmpfs there). The last
line of stdout is a JSON object of what the scenario saw; the test asserts on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ingest.embedding import Embedder
from ingest.errors import StoreUnavailable
from ingest.knowledge import KnowledgeBase, open_knowledge_base
from ingest.models import SourceDocument
from lorag.settings import Settings
from tests.ingest.disk_faults import fill, free_bytes

MIB = 2**20
WAIT_S = 120
FIRST = [
    SourceDocument("otters", "Sea otters hold hands while they sleep so they do not drift."),
    SourceDocument("herons", "Grey herons stand still in the shallows and spear fish at dawn."),
]
BIG_DOCS = 800
"""Documents of the big job: ~40 KiB written each, so ~30 MiB in all (more than the disk)."""
FORM = {"fields": "x" * 32_000}
"""A scanned form's fields, as metadata: every chunk's payload carries it."""


def big_job() -> list[SourceDocument]:
    return [
        SourceDocument(f"form-{i:04d}", f"Form {i} of the moth survey.", metadata=FORM)
        for i in range(BIG_DOCS)
    ]


def job(kb: KnowledgeBase, docs: list[SourceDocument]) -> dict[str, Any]:
    submitted = kb.jobs.submit("acme", docs)
    done = kb.jobs.wait("acme", submitted.id, timeout=WAIT_S)
    return {"status": done.status.value, "error": done.error}


def top(kb: KnowledgeBase, query: str) -> str | None:
    hits = kb.search("acme", query, top_k=1)
    return hits[0].doc_id if hits else None


def main(data_dir: Path, margin_mb: int, headroom_mb: int) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir, knowledge_min_free_mb=margin_mb)
    seen: dict[str, Any] = {}
    with open_knowledge_base(settings, embedder=Embedder(None, threads=1)) as kb:
        knowledge = settings.knowledge_dir
        seen["first"] = job(kb, FIRST)
        room = fill(knowledge, leave=(margin_mb + headroom_mb) * MIB)  # a few documents fit
        seen["big"] = job(kb, big_job())
        seen["free_mb_after_big"] = round(free_bytes(knowledge) / MIB, 2)
        seen["search_while_full"] = top(kb, "otters sleeping")
        seen["documents_while_full"] = len(kb.list_documents("acme"))

        brim = fill(knowledge, name=".brim")  # nothing at all left: reads still answer
        seen["search_at_brim"] = top(kb, "herons fishing")
        try:
            kb.jobs.submit("acme", FIRST)
            seen["submit_at_brim"] = "accepted"
        except StoreUnavailable as exc:
            seen["submit_at_brim"] = exc.message
        brim.unlink()

        seen["big_again"] = job(kb, big_job())  # the worker lives: refused again, at once
        room.unlink()  # space is freed
        seen["after_freeing"] = job(kb, [SourceDocument("newts", "Newts live in ponds.")])
        seen["search_after_freeing"] = top(kb, "newts in ponds")
    return seen


if __name__ == "__main__":
    report = main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps(report), flush=True)
