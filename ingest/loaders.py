"""File loaders: one `SourceDocument` from a .txt, .md, .html/.htm, .pdf or .docx file.

Every loader returns blocks (headings and paragraphs, PDF page numbers kept) and a title, or
raises `InvalidDocument` naming what is wrong (corrupt, empty, binary, too large), so one bad
file is reported while the others are ingested. Record files (.jsonl, .csv) hold many
documents each and live in `ingest.records`.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from ingest.blocks import MAX_HEADING_CHARS, markdown_blocks, normalize_newlines, text_blocks
from ingest.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from ingest.models import Block, SourceDocument

__all__ = [
    "DOCX_MAX_MEMBERS",
    "DOCX_MAX_RATIO",
    "DOCX_MAX_UNPACKED_BYTES",
    "DOCX_RATIO_FLOOR",
    "FILE_LOADERS",
    "MAX_DOCUMENT_CHARS",
    "MAX_FILE_BYTES",
    "PDF_MAX_PAGES",
    "PDF_MAX_SECONDS",
    "PDF_MAX_STREAM_BYTES",
    "Loader",
    "check_size",
    "decode_text",
    "load_docx",
    "load_file",
    "load_html",
    "load_markdown",
    "load_pdf",
    "load_text",
]

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest file read at all (PDFs and DOCX with images can be big)."""
MAX_DOCUMENT_CHARS = 5_000_000
"""Largest extracted text of one document (~1.2M tokens, ~7k chunks); larger is refused."""

# A .docx is a zip: its members are checked against these before anything is unpacked
# (Python's zipfile never inflates a member past its declared size).
DOCX_MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""Largest total declared uncompressed size of a .docx's members."""
DOCX_MAX_RATIO = 100
"""Largest compression ratio of one member over DOCX_RATIO_FLOOR bytes (XML packs ~5-20:1)."""
DOCX_RATIO_FLOOR = 1024 * 1024
DOCX_MAX_MEMBERS = 10_000

PDF_MAX_PAGES = 5_000
PDF_MAX_SECONDS = 120.0
"""Text extraction of one PDF stops (and the file is refused) after this long."""
PDF_MAX_STREAM_BYTES = 32 * 1024 * 1024
"""Largest decoded stream (pypdf's default is 75 MB); a page's text is in a few KB."""

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
    return next(
        (b.text for b in blocks if b.heading_level and len(b.text) <= MAX_HEADING_CHARS), None
    )


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
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tr",
    "blockquote",
    "figure",
    "figcaption",
    "form",
    "hr",
    "details",
    "summary",
    "address",
    "fieldset",
    "caption",
    "body",
}


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
    for tag in soup.find_all(role="navigation"):
        tag.decompose()
    for tag in soup.find_all(class_="headerlink"):
        tag.decompose()
    root = soup.find(role="main") or soup.find("main") or soup.body or soup
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


def _pdf_limits() -> dict[str, int]:
    """pypdf's safety limits for our use (text only): smaller than its defaults."""
    return {
        "maximum_declared_stream_length": PDF_MAX_STREAM_BYTES,
        "array_based_stream_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "zlib_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "lzw_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "run_length_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "brotli_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "jbig2_maximum_output_length": PDF_MAX_STREAM_BYTES,
        "image_maximum_buffer_size": PDF_MAX_STREAM_BYTES,
        "xform_maximum_invocations_per_extraction": 500,
    }


def load_pdf(
    path: Path, *, max_seconds: float = PDF_MAX_SECONDS
) -> tuple[tuple[Block, ...], str | None]:
    """A PDF's text, page by page, within pypdf's safety limits (decompression bombs and
    reference loops end as errors), PDF_MAX_PAGES and `max_seconds` of extraction."""
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError

    check_size(path)
    with path.open("rb") as handle:
        if not handle.read(1024).lstrip().startswith(b"%PDF"):
            raise InvalidDocument("corrupt PDF: no %PDF header")
    deadline = time.monotonic() + max_seconds
    chars = 0
    try:
        with apply_configuration(None, **_pdf_limits()):
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                raise InvalidDocument("encrypted PDF: cannot read it without a password")
            title = reader.metadata.title if reader.metadata else None
            pages = len(reader.pages)
            if pages > PDF_MAX_PAGES:
                raise DocumentTooLarge(
                    f"PDF has {pages} pages, over the {PDF_MAX_PAGES} page limit"
                )
            blocks: list[Block] = []
            for number, page in enumerate(reader.pages, start=1):
                text = normalize_newlines(page.extract_text() or "")
                for block in text_blocks(text, page=number):
                    blocks.append(Block(_WHITESPACE.sub(" ", block.text), 0, number))
                    chars += len(blocks[-1].text)
                if chars > MAX_DOCUMENT_CHARS:
                    break  # refused by _finish below; no need to read the other pages
                if time.monotonic() > deadline and number < pages:
                    raise DocumentTooLarge(
                        f"reading the PDF's text took over {max_seconds:g} s "
                        f"(page {number} of {pages})"
                    )
    except InvalidDocument:
        raise
    except LimitReachedError as exc:
        raise DocumentTooLarge(f"PDF is over a safety limit: {exc}") from None
    except RecursionError:
        raise InvalidDocument("corrupt PDF: its objects are nested too deeply") from None
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
    _check_zip(path)
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


def _check_zip(path: Path) -> None:
    """Refuse a .docx whose members would unpack to too much (a zip bomb), from the sizes its
    directory declares; nothing is unpacked."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidDocument(f"corrupt DOCX: not a readable zip file ({exc})") from None
    if len(members) > DOCX_MAX_MEMBERS:
        raise DocumentTooLarge(
            f"DOCX holds {len(members)} files, over the {DOCX_MAX_MEMBERS} limit (a zip bomb?)"
        )
    total = sum(member.file_size for member in members)
    if total > DOCX_MAX_UNPACKED_BYTES:
        raise DocumentTooLarge(
            f"DOCX unpacks to {total / 2**20:.0f} MiB, over the "
            f"{DOCX_MAX_UNPACKED_BYTES // 2**20} MiB limit (a zip bomb?)"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > DOCX_RATIO_FLOOR and ratio > DOCX_MAX_RATIO:
            raise DocumentTooLarge(
                f"a part of the DOCX is compressed {ratio:.0f}:1, over the "
                f"{DOCX_MAX_RATIO}:1 limit (a zip bomb?)"
            )


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
        title=(found_title or title or path.stem)[:MAX_HEADING_CHARS],
        source=source,
        blocks=blocks,
        content_hash=content_hash,
        metadata={"format": path.suffix.lower().lstrip(".")},
    )
