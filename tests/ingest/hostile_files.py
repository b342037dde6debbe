"""Hostile files too large to keep in the repository, made at test time (cheaply: the bombs'
compressed streams are one deflate block repeated, never compressed whole).

The small ones are kept in `tests/ingest/hostile/`; `python -m tests.ingest.hostile_files DIR`
writes these next to them for trying by hand (`lorag ingest DIR --tenant t`).
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

from tests.ingest.sample_files import pdf_bytes

MIB = 2**20
HOSTILE_DIR = Path(__file__).parent / "hostile"


def deflate_bomb(total: int, unit: bytes = b" " * MIB, *, head: bytes = b"") -> tuple[bytes, int]:
    """A raw deflate stream of `head` then `unit` repeated up to `total` bytes, and its CRC-32.

    Each repeat is flushed with Z_FULL_FLUSH, so the compressed piece of one repeat is the
    same every time and is just copied: ~1 KB a MiB of output.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert piece == again, "the repeated piece must not depend on what came before"
    count = (total - len(head)) // len(unit)
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(unit, crc)
    return start + piece * count + compressor.flush(), crc


def zip_bytes(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of already deflated members `(name, raw deflate data, size, crc)`, written by
    hand: zipfile cannot store data it did not compress itself."""
    out = bytearray()
    central = bytearray()
    for name, data, size, crc in members:
        encoded = name.encode()
        # version needed, flags, method (deflate), time, date (2024-01-01), crc, sizes, name
        # length, extra length: shared by the local and the central header
        fields = (20, 0, 8, 0, 0x5821, crc, len(data), size, len(encoded), 0)
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields)
        # plus: made by (first), comment length, disk, attributes, the local header's offset
        entry = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0, len(out))
        central += entry + encoded
        out += local + encoded + data
    count, start = len(members), len(out)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), start, 0)
    return bytes(out)


def write_zip_bomb_docx(path: Path, inflated: int = 1024 * MIB) -> Path:
    """A .docx (a zip) of ~1 MB whose word/document.xml inflates to `inflated` bytes (1 GiB):
    a real document's start, then blanks."""
    parts = {
        "[Content_Types].xml": (
            b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats'
            b'.org/package/2006/content-types"><Default Extension="rels" ContentType="applicati'
            b'on/vnd.openxmlformats-package.relationships+xml"/><Override PartName="/word/docume'
            b'nt.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingm'
            b'l.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxm'
            b'lformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://sche'
            b"mas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
            b'" Target="word/document.xml"/></Relationships>'
        ),
    }
    members = []
    for name, data in parts.items():
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        raw = compressor.compress(data) + compressor.flush()
        members.append((name, raw, len(data), zlib.crc32(data)))
    head = (
        b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
        b'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
    )
    bomb, crc = deflate_bomb(inflated, head=head)
    size = len(head) + (inflated - len(head)) // MIB * MIB
    members.append(("word/document.xml", bomb, size, crc))
    path.write_bytes(zip_bytes(members))
    return path


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _shared_stream_pdf(pages: int, stream: bytes, *, flate: bool) -> bytes:
    """`pages` pages that all draw the same content stream (object 5)."""
    kids = " ".join(f"{10 + i} 0 R" for i in range(pages))
    filters = " /Filter /FlateDecode" if flate else ""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        4: _FONT,
        5: f"<< /Length {len(stream)}{filters} >>\nstream\n".encode() + stream + b"\nendstream",
    }
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
    )
    objects.update({10 + i: page for i in range(pages)})
    return pdf_bytes(objects)


def write_pdf_bomb(path: Path, inflated: int = 1024 * MIB) -> Path:
    """A ~1 MB PDF whose one page's content stream inflates to `inflated` bytes (1 GiB)."""
    head = b"BT /F1 11 Tf 72 740 Td (boom) Tj ET\n"
    raw, _ = deflate_bomb(inflated, head=head)
    unit = b" " * MIB
    adler = zlib.adler32(head)
    for _ in range((inflated - len(head)) // MIB):
        adler = zlib.adler32(unit, adler)
    stream = b"\x78\xda" + raw + struct.pack(">L", adler)  # zlib framing for /FlateDecode
    path.write_bytes(_shared_stream_pdf(1, stream, flate=True))
    return path


def write_many_pages_pdf(path: Path, pages: int) -> Path:
    """A small PDF with `pages` pages sharing one short text stream."""
    stream = b"BT /F1 11 Tf 72 740 Td (Page text.) Tj ET"
    path.write_bytes(_shared_stream_pdf(pages, stream, flate=False))
    return path


def write_slow_pdf(path: Path, pages: int = 200, operators: int = 20_000) -> Path:
    """A ~50 KB PDF of `pages` pages sharing one stream of `operators` text operators:
    about a second of text extraction per page, so minutes for the whole file."""
    stream = b"BT /F1 11 Tf 72 740 Td " + b"(a) Tj " * operators + b"ET"
    path.write_bytes(_shared_stream_pdf(pages, zlib.compress(stream, 9), flate=True))
    return path


def write_heading_line(path: Path, chars: int = MIB) -> Path:
    """Markdown whose first line is a 1 MB ATX heading: a word, a megabyte of blanks, a word
    (the worst case of a backtracking `(.*?)[ \\t#]*$` heading pattern), then a paragraph."""
    path.write_text("# Herons" + " " * chars + "wade.\n\nHerons hunt in shallow water.\n")
    return path


def write_big_cell_csv(path: Path, cell: int = 10 * MIB) -> Path:
    """A CSV whose second record's text cell is `cell` characters (10 MB); a record follows."""
    path.write_text(
        "id,text\n"
        "first,Egrets are smaller than herons.\n"
        f"huge,{'w' * cell}\n"
        "last,Bitterns hide in reeds.\n"
    )
    return path


def write_generated(folder: Path) -> dict[str, Path]:
    """Every generated hostile file, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "bomb.docx": write_zip_bomb_docx(folder / "bomb.docx"),
        "bomb.pdf": write_pdf_bomb(folder / "bomb.pdf"),
        "many-pages.pdf": write_many_pages_pdf(folder / "many-pages.pdf", 5001),
        "heading.md": write_heading_line(folder / "heading.md"),
        "big-cell.csv": write_big_cell_csv(folder / "big-cell.csv"),
    }


if __name__ == "__main__":
    write_generated(Path(sys.argv[1]))
