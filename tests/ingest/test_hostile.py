"""Hostile files: each ends as a clear per-file error (or a valid document) in bounded time
and memory, and the files and jobs after it are still ingested.

Kept files are in `tests/ingest/hostile/`; the large ones are made by `hostile_files`.
"""

from __future__ import annotations

import shutil
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.blocks import MAX_HEADING_CHARS, markdown_blocks
from ingest.errors import DocumentTooLarge, InvalidDocument
from ingest.knowledge import KnowledgeBase
from ingest.loaders import MAX_DOCUMENT_CHARS, load_file, load_pdf
from ingest.models import JobStatus, SourceDocument
from ingest.records import load_records
from ingest.uploads import documents_from_upload
from tests.ingest.hostile_files import HOSTILE_DIR, MIB, write_generated, write_slow_pdf

# what each hostile file ends as: a fragment of its per-file error, or None for a document
EXPECTED: dict[str, str | None] = {
    "bomb.docx": "zip bomb",
    "bomb.pdf": "over a safety limit",
    "many-pages.pdf": "5001 pages, over the 5000 page limit",
    "page-loop.pdf": "corrupt PDF",
    "object-loop.pdf": "no extractable text",
    "empty.txt": "empty file",
    "heading.md": None,
    "invalid-utf8.txt": None,  # decoded as cp1252, undefined bytes replaced (U+FFFD)
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every hostile file in one folder (made once for the module: ~2 MB on disk but 10 MB
    for the CSV), followed by a good file that must still be ingested."""
    folder = tmp_path_factory.mktemp("hostile")
    for kept in HOSTILE_DIR.iterdir():
        shutil.copy(kept, folder / kept.name)
    write_generated(folder)
    (folder / "zz-good.md").write_text("# Pelicans\n\nPelicans fish in groups.\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def load(path: Path) -> SourceDocument:
    return load_file(path, doc_id=path.name, source=path.name, content_hash="h")


@pytest.mark.timeout(60)
def test_a_megabyte_heading_line_is_read_in_linear_time() -> None:
    for line in (
        "# " + " #" * (MIB // 2) + "x",
        "# Herons" + " " * MIB + "wade.",
        "#" * 6 + " " + "a " * (MIB // 2) + "#",
    ):
        started = time.perf_counter()
        (block,) = markdown_blocks(line)
        assert time.perf_counter() - started < 1.0
        # far too long for a heading: read as a paragraph, nothing lost
        assert block.heading_level == 0 and len(block.text) > MIB - 10
    # the same headings as before
    cases = {
        "## Title ##": ("Title", 2),
        "   # Indented": ("Indented", 1),
        "# trailing#  ": ("trailing", 1),
        "###### Six": ("Six", 6),
        "# " + "w" * MAX_HEADING_CHARS: ("w" * MAX_HEADING_CHARS, 1),
    }
    for line, expected in cases.items():
        assert [(b.text, b.heading_level) for b in markdown_blocks(line)] == [expected]
    for not_heading in ("#NoSpace", "####### seven", "    # code"):
        assert [b.heading_level for b in markdown_blocks(not_heading)] == [0]
    assert markdown_blocks("#  \n\ntext")[0].text == "text"  # an empty heading is dropped


def test_a_huge_csv_cell_is_one_bad_record_not_the_end_of_the_file(hostile: Path) -> None:
    result = load_records(hostile / "big-cell.csv", source="big-cell.csv")
    assert [d.doc_id for d in result.documents] == ["first", "last"]
    assert result.failures == [
        ("big-cell.csv:3", f"field 'text' is over {MAX_DOCUMENT_CHARS} characters")
    ]


def test_a_long_csv_cell_within_the_document_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,text\na," + "word " * 100_000 + "\nb,short\n")  # 500 KB cell
    result = load_records(path, source="long.csv")
    assert [d.doc_id for d in result.documents] == ["a", "b"] and not result.failures


def test_deeply_nested_jsonl_records_are_bad_records() -> None:
    result = load_records(HOSTILE_DIR / "nested.jsonl", source="nested.jsonl")
    assert [d.doc_id for d in result.documents] == ["ok-1", "ok-2"]
    assert [name for name, _ in result.failures] == ["nested.jsonl:2", "nested.jsonl:3"]
    assert all("nested too deeply" in reason for _, reason in result.failures)


@pytest.mark.timeout(120)
def test_a_zip_bomb_docx_is_refused_before_it_is_unpacked(hostile: Path) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DocumentTooLarge) as raised:
            load(hostile / "bomb.docx")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert peak < 16 * MIB, f"peak {peak / MIB:.0f} MiB"
    assert "zip bomb" in raised.value.message
    assert raised.value.status == 400


@pytest.mark.timeout(120)
def test_hostile_pdfs_fail_fast(hostile: Path, tmp_path: Path) -> None:
    for name in ("bomb.pdf", "many-pages.pdf", "page-loop.pdf", "object-loop.pdf"):
        started = time.perf_counter()
        with pytest.raises(InvalidDocument) as raised:
            load(hostile / name)
        assert EXPECTED[name] in raised.value.message, (name, raised.value.message)
        assert time.perf_counter() - started < 5.0, name
    # minutes of text extraction (~1 s a page, 200 pages) are cut off at the time limit
    slow = write_slow_pdf(tmp_path / "slow.pdf")
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge) as raised:
        load_pdf(slow, max_seconds=2.0)
    assert "took over 2 s" in raised.value.message
    assert time.perf_counter() - started < 10.0


@pytest.mark.timeout(300)
def test_a_folder_of_hostile_files_ingests_what_it_can(kb: KnowledgeBase, hostile: Path) -> None:
    started = time.perf_counter()
    report = kb.ingest_paths("acme", [hostile], progress=False)
    assert time.perf_counter() - started < 120
    failed = dict(report.failed)
    for name, fragment in EXPECTED.items():
        if fragment is None:
            assert name in report.added, (name, failed.get(name))
        else:
            assert fragment in failed[name], (name, failed.get(name))
    assert "nested too deeply" in failed["nested.jsonl:2"]
    assert "nested too deeply" in failed["nested.jsonl:3"]
    assert "over 5000000 characters" in failed["big-cell.csv:3"]
    assert {"ok-1", "ok-2", "first", "last", "zz-good.md"} <= set(report.added)
    for reason in failed.values():
        assert str(hostile) not in reason and "/tmp" not in reason
    assert kb.search("acme", "pelicans fish", top_k=1)[0].doc_id == "zz-good.md"
    replaced = kb.search("acme", "storks chimneys", top_k=1)[0]
    assert replaced.doc_id == "invalid-utf8.txt" and "Café crème" in replaced.text
    assert "\ufffd" in replaced.text
    heading = kb.search("acme", "herons hunt in shallow water", top_k=1)[0]
    assert heading.doc_id == "heading.md" and heading.section is None  # not a heading
    assert len(heading.title or "") <= MAX_HEADING_CHARS

    job = kb.jobs.submit("acme", [SourceDocument("after", "Spoonbills sweep their bills.")])
    assert kb.jobs.wait("acme", job.id, timeout=120).status == JobStatus.SUCCEEDED
    assert kb.search("acme", "spoonbills", top_k=1)[0].doc_id == "after"


@pytest.mark.timeout(300)
def test_hostile_uploads_are_clear_400s(hostile: Path) -> None:
    for path in sorted(hostile.iterdir()):
        fragment = EXPECTED.get(path.name)
        if path.suffix in (".jsonl", ".csv") or path.name == "zz-good.md":
            continue
        if fragment is None:
            (doc,) = documents_from_upload(path.name, path.read_bytes())
            assert doc.doc_id == path.name
            continue
        with pytest.raises(InvalidDocument) as raised:
            documents_from_upload(path.name, path.read_bytes())
        assert raised.value.status == 400 and raised.value.param == "file"
        assert raised.value.message.startswith(f"{path.name}: ")
        assert fragment in raised.value.message
        assert "/tmp" not in raised.value.message
    with pytest.raises(InvalidDocument) as raised:
        documents_from_upload("nested.jsonl", (HOSTILE_DIR / "nested.jsonl").read_bytes())
    assert raised.value.message.startswith("nested.jsonl:2: ")
    assert "(and 1 more)" in raised.value.message
