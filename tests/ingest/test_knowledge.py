"""The knowledge base end to end: real files of every format, the real embedding model and a
real qdrant-edge folder (and qdrant-client ":memory:" where the backend matters)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ingest.errors import (
    DocumentNotFound,
    InvalidFilter,
    InvalidInput,
    InvalidTenant,
    JobNotFound,
)
from ingest.knowledge import KnowledgeBase
from ingest.models import SourceDocument
from tests.ingest.probes import long_text, stored
from tests.ingest.sample_files import write_corpus, write_pdf

CORPUS_IDS = [
    "bread.txt",
    "faq-1",
    "faq.jsonl:2",
    "manual.html",
    "pol-leave",
    "pol-travel",
    "space.pdf",
    "sub/router.docx",
    "tools.md",
]

QUESTIONS = [
    ("What does error E-4012 mean?", "manual.html", "water tank sensor"),
    ("How long is the warranty on Halden tools?", "tools.md", "36-month"),
    ("How often does the station orbit the Earth?", "space.pdf", "92 minutes"),
    ("How many sunrises does the crew see each day?", "space.pdf", "16 sunrises"),
    ("How do I restore factory settings on the router?", "sub/router.docx", "reset button"),
    ("What is the hotel limit per night?", "pol-travel", "150 euros"),
    ("Why is the sky blue?", "faq.jsonl:2", "scatters"),
    ("What is the grey liquid on a sourdough starter?", "bread.txt", "hooch"),
]


@pytest.mark.parametrize("backend", ["edge", "memory"])
def test_every_format_is_ingested_and_found(open_kb, tmp_path: Path, backend: str) -> None:
    kb = open_kb(backend)
    folder = write_corpus(tmp_path / "corpus")
    report = kb.ingest_paths("acme", [folder], progress=False)
    assert sorted(report.added) == CORPUS_IDS
    assert report.failed == [] and report.updated == [] and report.unchanged == []
    assert report.chunks == sum(d.chunks for d in kb.list_documents("acme"))

    for question, doc_id, phrase in QUESTIONS:
        top = kb.search("acme", question, top_k=3)[0]
        assert (top.doc_id, phrase in top.text) == (doc_id, True), question

    (hit,) = kb.search("acme", "sunrises crew", top_k=1, mode="sparse")
    assert (hit.doc_id, hit.page, hit.title) == ("space.pdf", 2, "Space Station Facts")
    (hit,) = kb.search("acme", "Halden warranty", top_k=1, mode="dense")
    assert (hit.section, hit.source) == ("Halden Power Tools > Warranty", "tools.md")
    (hit,) = kb.search("acme", "WPA3 firmware", top_k=1)
    assert (hit.doc_id, hit.section) == ("sub/router.docx", "Aquila Router Handbook > Firmware")

    hits = kb.search("acme", "leave", top_k=5, filter={"team": "people"})
    assert [h.doc_id for h in hits] == ["pol-leave"]
    assert hits[0].metadata == {"team": "people"}
    hits = kb.search("acme", "policy", top_k=5, filter={"source": "policies.csv"})
    assert sorted(h.doc_id for h in hits) == ["pol-leave", "pol-travel"]
    assert kb.search("acme", "hotel", top_k=5, mode="dense", score_threshold=0.99) == []


def test_update_unchanged_sync_and_delete(kb: KnowledgeBase, tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "corpus")
    kb.ingest_paths("acme", [folder], progress=False)
    first_hash = kb.get_document("acme", "tools.md").content_hash

    (folder / "tools.md").write_text("# Halden\n\n## Warranty\n\nThe warranty is now 48 months.\n")
    (folder / "bread.txt").unlink()
    report = kb.ingest_paths("acme", [folder], sync=True, progress=False)
    assert report.updated == ["tools.md"]
    assert report.deleted == ["bread.txt"]
    assert sorted(report.unchanged) == sorted(set(CORPUS_IDS) - {"tools.md", "bread.txt"})
    assert report.added == []

    texts = [p["text"] for p in stored(kb, "acme", "tools.md")]
    assert texts == ["The warranty is now 48 months."]  # no stale chunk of the old version
    assert kb.get_document("acme", "tools.md").content_hash != first_hash
    assert "48 months" in kb.search("acme", "How long is the Halden warranty?")[0].text
    assert "bread.txt" not in {d.doc_id for d in kb.list_documents("acme")}

    # a second folder with --sync only syncs itself
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.md").write_text("A note about kestrels.")
    report = kb.ingest_paths("acme", [other], sync=True, progress=False)
    assert (report.added, report.deleted) == (["note.md"], [])
    assert len(kb.list_documents("acme")) == len(CORPUS_IDS)  # -bread +note

    # without sync nothing is deleted
    (other / "note.md").unlink()
    assert kb.ingest_paths("acme", [other], progress=False).deleted == []
    assert kb.delete_document("acme", "note.md") is True
    with pytest.raises(DocumentNotFound) as raised:
        kb.delete_document("acme", "note.md")
    assert raised.value.status == 404
    with pytest.raises(DocumentNotFound):
        kb.get_document("acme", "note.md")


def test_changed_document_with_fewer_chunks_leaves_exactly_the_new_ones(kb: KnowledgeBase) -> None:
    long = "\n\n".join(f"Paragraph {i} about owls and their nests. " * 12 for i in range(8))
    kb.ingest_documents("acme", [SourceDocument("owls", long)])
    assert len(stored(kb, "acme", "owls")) > 3
    report = kb.ingest_documents("acme", [SourceDocument("owls", "Owls hunt at night.")])
    assert report.updated == ["owls"]
    (payload,) = stored(kb, "acme", "owls")
    assert (payload["chunk_index"], payload["chunk_count"], payload["text"]) == (
        0,
        1,
        "Owls hunt at night.",
    )
    again = kb.ingest_documents("acme", [SourceDocument("owls", "Owls hunt at night.")])
    assert (again.unchanged, again.chunks) == (["owls"], 0)


def test_search_during_reingest_always_finds_the_document(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb.ingest_documents("acme", [SourceDocument("filler", "Unrelated text about teapots.")])
    kb.ingest_documents("acme", [SourceDocument("ptero", long_text("a", 12))])
    real_upsert = kb.store.upsert

    def slow_upsert(*args: object, **kwargs: object) -> None:
        time.sleep(0.3)  # widens any window in which the document could be missing
        real_upsert(*args, **kwargs)

    monkeypatch.setattr(kb.store, "upsert", slow_upsert)
    stop = threading.Event()
    results: list[bool] = []
    errors: list[BaseException] = []

    def search_forever() -> None:
        try:
            while not stop.is_set():
                for mode in ("hybrid", "sparse", "dense"):
                    hits = kb.search("acme", "quetzalcoatlus glided", top_k=3, mode=mode)
                    results.append(any(h.doc_id == "ptero" for h in hits))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    searchers = [threading.Thread(target=search_forever) for _ in range(2)]
    for thread in searchers:
        thread.start()
    try:
        for round_, size in enumerate([4, 15, 2, 9, 12, 3]):
            report = kb.ingest_documents(
                "acme", [SourceDocument("ptero", long_text(f"r{round_}", size))]
            )
            assert report.updated == ["ptero"]
    finally:
        stop.set()
        for thread in searchers:
            thread.join()
    assert not errors
    assert len(results) > 30
    assert all(results), f"{results.count(False)} of {len(results)} searches missed the document"
    assert len(stored(kb, "acme", "ptero")) == len(
        kb.chunker.chunk(SourceDocument("x", long_text("r5", 3)))
    )


def test_every_method_is_confined_to_its_tenant(kb: KnowledgeBase, tmp_path: Path) -> None:
    acme, globex = tmp_path / "acme", tmp_path / "globex"
    for folder, word in ((acme, "aardvark"), (globex, "gazelle")):
        folder.mkdir()
        (folder / "shared.md").write_text(f"# Secret\n\nThe {word} password is {word}-42.")
        (folder / f"{word}.md").write_text(f"Only {word} people know this {word} fact.")
    kb.ingest_paths("acme", [acme], progress=False)
    kb.ingest_paths("globex", [globex], progress=False)

    for mode in ("hybrid", "dense", "sparse"):
        hits = kb.search("acme", "gazelle password", top_k=10, mode=mode)
        assert hits and all("gazelle" not in h.text for h in hits)
    assert kb.search("acme", "password", filter={"doc_id": "gazelle.md"}) == []
    assert [d.doc_id for d in kb.list_documents("acme")] == ["aardvark.md", "shared.md"]
    assert "aardvark" in kb.search("acme", "password", top_k=1)[0].text
    with pytest.raises(DocumentNotFound):
        kb.get_document("acme", "gazelle.md")
    with pytest.raises(DocumentNotFound):
        kb.delete_document("acme", "gazelle.md")

    kb.delete_document("acme", "shared.md")  # same id in globex stays
    assert "gazelle" in kb.search("globex", "password", top_k=1)[0].text
    # syncing acme's folder does not touch globex's documents
    (acme / "aardvark.md").unlink()
    assert kb.ingest_paths("acme", [acme], sync=True, progress=False).deleted == ["aardvark.md"]
    assert [d.doc_id for d in kb.list_documents("globex")] == ["gazelle.md", "shared.md"]

    job = kb.jobs.submit("globex", [SourceDocument("job-doc", "A globex job document.")])
    kb.jobs.wait("globex", job.id, timeout=60)
    with pytest.raises(JobNotFound):
        kb.jobs.get("acme", job.id)
    assert kb.jobs.list("acme") == []

    for bad in ("Acme", "../globex", "", "a" * 65):
        with pytest.raises(InvalidTenant):
            kb.search(bad, "password")
        with pytest.raises(InvalidTenant):
            kb.list_documents(bad)
    with pytest.raises(InvalidFilter):
        kb.search("acme", "password", filter={"tenant": "globex"})


def test_bad_inputs_are_reported_per_file_and_the_rest_is_ingested(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nThe lighthouse keeper lights the lamp at dusk.")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n%broken beyond repair\n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "huge.txt").write_text("y" * 10_000_000)
    (folder / "records.jsonl").write_text('{"id": "r1", "text": "Ravens are clever."}\n{oops\n')
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    write_pdf(folder / "fine.pdf", [["Beacons guide ships at night."]])
    unknown = tmp_path / "explicit.xyz"
    unknown.write_text("?")

    started = time.perf_counter()
    report = kb.ingest_paths("acme", [folder, unknown], progress=False)
    assert time.perf_counter() - started < 60
    assert sorted(report.added) == ["fine.pdf", "good.md", "r1"]
    failed = dict(report.failed)
    assert sorted(failed) == [
        "binary.txt",
        "corrupt.pdf",
        "empty.txt",
        "explicit.xyz",
        "huge.txt",
        "records.jsonl:2",
    ]
    assert "binary" in failed["binary.txt"]
    assert "PDF" in failed["corrupt.pdf"]
    assert "empty" in failed["empty.txt"]
    assert "limit" in failed["huge.txt"]
    assert "unsupported" in failed["explicit.xyz"]
    assert report.skipped == [("photo.jpg", "unsupported file type '.jpg'")]
    assert kb.search("acme", "who lights the lamp?")[0].doc_id == "good.md"

    with pytest.raises(InvalidInput):
        kb.search("acme", "   ")
    with pytest.raises(InvalidInput):
        kb.search("acme", "lamp", top_k=0)
    with pytest.raises(InvalidInput):
        kb.search("acme", "lamp", mode="fuzzy")  # type: ignore[arg-type]
    report = kb.ingest_documents(
        "acme", [SourceDocument("a", "same"), SourceDocument("a", "twice"), SourceDocument("b", "")]
    )
    assert report.added == ["a"]
    assert dict(report.failed) == {
        "a": "duplicate document id in this ingest",
        "b": report.failed[1][1],
    }
    assert "empty" in report.failed[1][1]


def test_data_survives_close_and_reopen(open_kb, tmp_path: Path) -> None:
    data = tmp_path / "persist"
    kb = open_kb("edge", data_dir=data)
    folder = write_corpus(tmp_path / "corpus")
    kb.ingest_paths("acme", [folder], progress=False)
    before = kb.list_documents("acme")
    kb.close()

    again = open_kb("edge", data_dir=data)
    assert again.list_documents("acme") == before
    assert again.search("acme", "What does error E-4012 mean?")[0].doc_id == "manual.html"
    report = again.ingest_paths("acme", [folder], progress=False)
    assert sorted(report.unchanged) == CORPUS_IDS and report.chunks == 0
