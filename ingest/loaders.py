"""File loaders: one `SourceDocument` from a .txt, .md, .html/.htm, .pdf or .docx file.

Every loader returns blocks (headings and paragraphs, PDF page numbers kept) and a title, or
raises `InvalidDocument` naming what is wrong (corrupt, empty, binary, too large), so one bad
file is reported while the others are ingested. Record files (.jsonl, .csv) hold many
documents each and live in `ingest.records`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ingest.blocks import markdown_blocks, normalize_newlines, text_blocks
from ingest.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from ingest.models import Block, SourceDocument

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest file read at all (PDFs and DOCX with images can be big)."""
MAX_DOCUMENT_CHARS = 5_000_000
"""Largest extracted text of one document (~1.2M tokens, ~7k chunks); larger is refused."""

_SNIFF_BYTES = 8192
_WHITESPACE = re.compile(r"\s+")


def check_size(path: Path) -> int:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            f"file is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit"
        )
    if size == 0:
        raise InvalidDocument("empty file")
    return size


def decode_text(data: bytes) -> str:
    """Bytes of a text file as str; refuses binary data (NUL bytes or many control bytes)."""
    head = data[:_SNIFF_BYTES]
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if b"\x00" in head or controls > len(head) // 10:
        raise InvalidDocument("binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _finish(blocks: list[Block], what: str) -> tuple[Block, ...]:
    total = sum(len(b.text) for b in blocks)
    if total == 0:
        raise InvalidDocument(f"empty document: no text in this {what}")
    if total > MAX_DOCUMENT_CHARS:
        raise DocumentTooLarge(
            f"document has {total / 1e6:.1f}M characters of text, "
            f"over the {MAX_DOCUMENT_CHARS / 1e6:.0f}M limit"
        )
    return tuple(blocks)


def _first_heading(blocks: list[Block]) -> str | None:
    return next((b.text for b in blocks if b.heading_level), None)


def load_text(path: Path) -> tuple[tuple[Block, ...], str | None]:
    check_size(path)
    blocks = text_blocks(decode_text(path.read_bytes()))
    return _finish(blocks, "text file"), None


def load_markdown(path: Path) -> tuple[tuple[Block, ...], str | None]:
    check_size(path)
    blocks = markdown_blocks(decode_text(path.read_bytes()))
    return _finish(blocks, "markdown file"), _first_heading(blocks)


# --- HTML ---------------------------------------------------------------------------------

_DROP_TAGS = ["script", "style", "nav", "noscript", "template", "iframe", "svg", "footer", "head"]
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "li", "ul", "ol", "dl", "dt",
    "dd", "table", "thead", "tbody", "tr", "blockquote", "figure", "figcaption", "form", "hr",
    "details", "summary", "address", "fieldset", "caption", "body",
}  # fmt: skip


def _html_parser() -> str:
    try:
        import lxml  # noqa: F401
    except ImportError:
        return "html.parser"
    return "lxml"


def load_html(path: Path) -> tuple[tuple[Block, ...], str | None]:
    from bs4 import BeautifulSoup

    check_size(path)
    data = path.read_bytes()
    decode_text(data[:_SNIFF_BYTES])  # refuses binary files early
    soup = BeautifulSoup(data, _html_parser())
    title = _clean(soup.title.get_text()) if soup.title else None
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": "navigation"}):
        tag.decompose()
    for tag in soup.find_all(class_="headerlink"):
        tag.decompose()
    root = soup.find(attrs={"role": "main"}) or soup.find("main") or soup.body or soup
    try:
        blocks = _html_blocks(root)
    except RecursionError:
        raise InvalidDocument("HTML is nested too deeply to read") from None
    return _finish(blocks, "HTML file"), title or _first_heading(blocks)


def _clean(text: str) -> str:
    return _WHITESPACE.sub(" ", text).replace("¶", "").strip()


def _html_blocks(root: object) -> list[Block]:
    from bs4 import NavigableString, Tag
    from bs4.element import PreformattedString

    blocks: list[Block] = []
    buffer: list[str] = []

    def flush() -> None:
        text = _clean("".join(buffer)).strip(" |")
        buffer.clear()
        if text:
            blocks.append(Block(text))

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):
                    buffer.append(str(child))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name
            if name in _HEADINGS:
                flush()
                text = _clean(child.get_text(" "))
                if text:
                    blocks.append(Block(text, int(name[1])))
            elif name == "pre":
                flush()
                text = child.get_text().strip("\n")
                if text.strip():
                    blocks.append(Block(text))
            elif name in ("td", "th"):
                buffer.append(" | ")
                walk(child)
            elif name == "br":
                buffer.append(" ")
            elif name in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    walk(root)  # type: ignore[arg-type]
    flush()
    return blocks


# --- PDF ----------------------------------------------------------------------------------


def load_pdf(path: Path) -> tuple[tuple[Block, ...], str | None]:
    from pypdf import PdfReader

    check_size(path)
    with path.open("rb") as handle:
        if not handle.read(1024).lstrip().startswith(b"%PDF"):
            raise InvalidDocument("corrupt PDF: no %PDF header")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidDocument("encrypted PDF: cannot read it without a password")
        title = reader.metadata.title if reader.metadata else None
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            text = normalize_newlines(page.extract_text() or "")
            for block in text_blocks(text, page=number):
                blocks.append(Block(_WHITESPACE.sub(" ", block.text), 0, number))
    except InvalidDocument:
        raise
    except Exception as exc:  # pypdf raises many types on malformed files
        raise InvalidDocument(f"corrupt PDF: {type(exc).__name__}: {exc}") from None
    if not blocks:
        raise InvalidDocument("PDF has no extractable text (scanned images?)")
    return _finish(blocks, "PDF"), (title or "").strip() or None


# --- DOCX ---------------------------------------------------------------------------------

_DOCX_HEADING = re.compile(r"^Heading (\d)$")


def load_docx(path: Path) -> tuple[tuple[Block, ...], str | None]:
    import docx
    from docx.table import Table

    check_size(path)
    try:
        document = docx.Document(str(path))
        blocks: list[Block] = []
        title: str | None = (document.core_properties.title or "").strip() or None
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = [_clean(cell.text) for cell in row.cells]
                    line = " | ".join(cell for cell in cells if cell)
                    if line:
                        blocks.append(Block(line))
                continue
            text = item.text.strip()
            if not text:
                continue
            style = item.style.name if item.style is not None else ""
            match = _DOCX_HEADING.match(style or "")
            if style == "Title":
                title = title or text
                blocks.append(Block(text, 1))
            elif match:
                blocks.append(Block(text, min(int(match.group(1)) + 1, 6)))
            else:
                blocks.append(Block(text))
    except Exception as exc:  # zipfile, lxml and python-docx errors on malformed files
        raise InvalidDocument(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
    return _finish(blocks, "DOCX file"), title or _first_heading(blocks)


# --- dispatch -----------------------------------------------------------------------------

Loader = Callable[[Path], tuple[tuple[Block, ...], str | None]]

FILE_LOADERS: dict[str, Loader] = {
    ".txt": load_text,
    ".text": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".pdf": load_pdf,
    ".docx": load_docx,
}


def load_file(
    path: Path, *, doc_id: str, source: str, content_hash: str, title: str | None = None
) -> SourceDocument:
    """Read one single-document file; raises `InvalidDocument` (or a subclass) if it cannot.

    The title is the one the file names (HTML <title>, PDF/DOCX properties, first heading),
    else `title`, else the file name's stem.
    """
    loader = FILE_LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedFormat(f"unsupported file type {path.suffix or '(none)'!r}")
    try:
        blocks, found_title = loader(path)
    except OSError as exc:
        raise InvalidDocument(f"cannot read file: {exc.strerror or exc}") from None
    return SourceDocument(
        doc_id=doc_id,
        title=found_title or title or path.stem,
        source=source,
        blocks=blocks,
        content_hash=content_hash,
        metadata={"format": path.suffix.lower().lstrip(".")},
    )
