"""Loaders on real files of every format, and bad inputs reported per file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from ingest.loaders import MAX_DOCUMENT_CHARS, load_file
from ingest.records import load_records
from ingest.sources import discover
from ingest.uploads import documents_from_upload
from tests.ingest.sample_files import write_corpus, write_docx, write_pdf


def load(path: Path):
    return load_file(path, doc_id=path.name, source=path.name, content_hash="h")


def texts(doc) -> list[tuple[str, int]]:
    return [(b.text, b.heading_level) for b in doc.blocks]


def test_html_keeps_title_and_structure_and_drops_scripts_and_navigation(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "c")
    doc = load(folder / "manual.html")
    assert doc.title == "Mistral X2 Manual"
    assert texts(doc)[:3] == [
        ("Mistral X2 Manual", 1),
        ("Descaling", 2),
        ("Descale the Mistral X2 every three months, or when the descale light blinks orange.", 0),
    ]
    everything = " ".join(b.text for b in doc.blocks)
    for dropped in ("trackingSecret", "do-not-index", "secretcss", "Shopnavlink"):
        assert dropped not in everything
    assert ("E-4021: the grinder is blocked.", 0) in texts(doc)


def test_pdf_text_keeps_page_numbers(tmp_path: Path) -> None:
    path = write_pdf(
        tmp_path / "a.pdf",
        [["Page one talks about apples."], ["Page two talks about pears."]],
        title="Fruit",
    )
    doc = load(path)
    assert doc.title == "Fruit"
    assert [(b.text, b.page) for b in doc.blocks] == [
        ("Page one talks about apples.", 1),
        ("Page two talks about pears.", 2),
    ]


def test_docx_keeps_headings_and_tables(tmp_path: Path) -> None:
    doc = load(write_docx(tmp_path / "r.docx"))
    assert doc.title == "Aquila Router Handbook"
    assert texts(doc) == [
        ("Aquila Router Handbook", 1),
        ("Resetting the router", 2),
        (
            "To restore factory settings, hold the recessed reset button for ten seconds "
            "with a paper clip until the lights blink.",
            0,
        ),
        ("Firmware", 2),
        ("Firmware FW-7.2 adds WPA3 support and fixes 5 GHz dropouts.", 0),
        ("Model | Ports", 0),
        ("Aquila AX | 4 gigabit ports", 0),
    ]


def test_markdown_and_text(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("Title\n=====\n\nSome text.\n\n```\n# not a heading\n```\n")
    doc = load(tmp_path / "a.md")
    assert doc.title == "Title"
    assert texts(doc) == [("Title", 1), ("Some text.", 0), ("```\n# not a heading\n```", 0)]
    (tmp_path / "b.txt").write_bytes("# plain\r\n\r\ncaf\xe9 latin-1".encode("cp1252"))
    assert texts(load(tmp_path / "b.txt")) == [("# plain", 0), ("café latin-1", 0)]


def test_records_from_jsonl_and_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = [
        json.dumps({"id": 7, "title": "T", "text": "seven", "lang": "en"}),
        "",
        json.dumps({"text": "no id here"}),
        "{not json",
        json.dumps({"title": "no text"}),
        json.dumps(["a", "list"]),
    ]
    path.write_text("\n".join(lines))
    result = load_records(path, source="r.jsonl", doc_id_prefix="p/")
    assert [(d.doc_id, d.title, d.text, dict(d.metadata)) for d in result.documents] == [
        ("p/7", "T", "seven", {"lang": "en"}),
        ("p/r.jsonl:3", None, "no id here", {}),
    ]
    assert [name for name, _ in result.failures] == ["r.jsonl:4", "r.jsonl:5", "r.jsonl:6"]
    assert "no text field" in result.failures[1][1]

    csv_path = tmp_path / "r.csv"
    csv_path.write_text('id,text,team\na,"first, with comma",x\n,second,y\nb,third,z,extra\n')
    result = load_records(csv_path, source="r.csv")
    assert [(d.doc_id, d.text, dict(d.metadata)) for d in result.documents] == [
        ("a", "first, with comma", {"team": "x"}),
        ("r.csv:3", "second", {"team": "y"}),
    ]
    assert result.failures == [("r.csv:4", "unreadable record: more cells than header columns")]


@pytest.mark.parametrize(
    ("name", "content", "error", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage", InvalidDocument, "PDF"),
        ("fake.pdf", b"this is not a pdf at all", InvalidDocument, "corrupt PDF"),
        ("broken.docx", b"PK\x03\x04 not really a zip", InvalidDocument, "corrupt DOCX"),
        ("binary.txt", bytes(range(256)) * 4, InvalidDocument, "binary"),
        ("empty.md", b"", InvalidDocument, "empty"),
        ("blank.txt", b"\n\n   \n", InvalidDocument, "empty"),
        ("image.png", b"\x89PNG\r\n", UnsupportedFormat, "unsupported"),
    ],
)
def test_bad_files_raise_clear_errors(
    tmp_path: Path, name: str, content: bytes, error: type, reason: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error) as raised:
        load(tmp_path / name)
    assert reason in raised.value.message
    assert raised.value.status == 400


def test_a_10_mb_single_line_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "line.txt"
    path.write_text("x" * 10_000_000)
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge) as raised:
        load(path)
    assert time.perf_counter() - started < 5
    assert f"{MAX_DOCUMENT_CHARS / 1e6:.0f}M limit" in raised.value.message


def test_discover_finds_every_format_with_relative_ids(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path / "c")
    (folder / "notes.xyz").write_text("unknown")
    (folder / ".hidden.md").write_text("# hidden")
    found = discover([folder], doc_id_prefix="kb/", exclude=["*.csv"])
    assert sorted(p.doc_id for p in found.pending) == [
        "kb/bread.txt",
        "kb/faq-1",
        "kb/faq.jsonl:2",
        "kb/manual.html",
        "kb/space.pdf",
        "kb/sub/router.docx",
        "kb/tools.md",
    ]
    assert found.skipped == [("notes.xyz", "unsupported file type '.xyz'")]
    explicit = discover([folder / "notes.xyz", tmp_path / "missing.txt", folder / "tools.md"])
    assert [p.doc_id for p in explicit.pending] == ["tools.md"]
    assert [name for name, _ in explicit.failed] == ["notes.xyz", str(tmp_path / "missing.txt")]


def test_uploads_become_documents_or_clear_errors(tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "a.pdf", [["Uploaded PDF text."]]).read_bytes()
    (doc,) = documents_from_upload("reports/Q3 summary.pdf", pdf)
    assert (doc.doc_id, doc.source, doc.title) == ("Q3 summary.pdf", "Q3 summary.pdf", "Q3 summary")
    assert [(b.text, b.page) for b in doc.blocks] == [("Uploaded PDF text.", 1)]
    (doc,) = documents_from_upload(
        "r.docx", write_docx(tmp_path / "r.docx").read_bytes(), doc_id="x"
    )
    assert (doc.doc_id, doc.title) == ("x", "Aquila Router Handbook")
    docs = documents_from_upload("faq.jsonl", b'{"id": "q1", "text": "One."}\n{"text": "Two."}\n')
    assert [d.doc_id for d in docs] == ["q1", "faq.jsonl:2"]

    for filename, data, fragment in [
        ("evil.exe", b"MZ", "unsupported file type '.exe'"),
        ("broken.pdf", b"%PDF-1.4 truncated", "broken.pdf: corrupt PDF"),
        ("blank.md", b"  \n", "blank.md: empty file"),
        ("bad.jsonl", b'{"id": 1, "text": "ok"}\n{oops\n', "bad.jsonl:2: unreadable record"),
    ]:
        with pytest.raises(InvalidDocument) as raised:
            documents_from_upload(filename, data)
        assert fragment in raised.value.message
        assert raised.value.status == 400
