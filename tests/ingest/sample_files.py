"""Real sample files for the ingest tests: a hand-written PDF, a python-docx DOCX, and a
folder holding one document of every supported format (each about a different topic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(objects: dict[int, bytes], root: int = 1, info: int | None = None) -> bytes:
    """A PDF of numbered objects with a correct xref table (missing numbers are free);
    `info`: the number of the document information dictionary."""
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += f"xref\n0 {size}\n0000000000 65535 f \n".encode()
    for number in range(1, size):
        entry = (
            f"{offsets[number]:010d} 00000 n \n" if number in offsets else "0" * 10 + " 65535 f \n"
        )
        out += entry.encode()
    trailer = f"/Size {size} /Root {root} 0 R" + (f" /Info {info} 0 R" if info else "")
    out += f"trailer\n<< {trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def write_pdf(path: Path, pages: Sequence[Sequence[str]], *, title: str | None = None) -> Path:
    """A valid PDF (Helvetica text, one line per string; "" is a blank line) with `pages`."""
    count = len(pages)
    page_ids = [4 + 2 * i for i in range(count)]
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] "
        f"/Count {count} >>".encode(),
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        body = " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 11 Tf 14 TL 72 740 Td {body} ET".encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        ).encode()
        objects[page_id + 1] = (
            f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream"
        )
    info_id = 4 + 2 * count
    if title:
        objects[info_id] = f"<< /Title ({_pdf_escape(title)}) >>".encode("latin-1")
    path.write_bytes(pdf_bytes(objects, info=info_id if title else None))
    return path


def write_docx(path: Path) -> Path:
    """A DOCX with a title, two headings, paragraphs and a table (python-docx)."""
    import docx

    document = docx.Document()
    document.add_heading("Aquila Router Handbook", 0)
    document.add_heading("Resetting the router", 1)
    document.add_paragraph(
        "To restore factory settings, hold the recessed reset button for ten seconds "
        "with a paper clip until the lights blink."
    )
    document.add_heading("Firmware", 1)
    document.add_paragraph("Firmware FW-7.2 adds WPA3 support and fixes 5 GHz dropouts.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Model"
    table.cell(0, 1).text = "Ports"
    table.cell(1, 0).text = "Aquila AX"
    table.cell(1, 1).text = "4 gigabit ports"
    document.save(str(path))
    return path


HTML = """<!doctype html>
<html><head><title>Mistral X2 Manual</title>
<style>body { color: red; } .secretcss { }</style>
<script>var trackingSecret = "do-not-index";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/shop">Shopnavlink</a></nav>
<div role="main">
<h1>Mistral X2 Manual</h1>
<h2>Descaling</h2>
<p>Descale the Mistral X2 every three months, or when the descale light blinks orange.</p>
<p>Use one sachet of citric acid descaler in 500 ml of water.</p>
<h2>Error codes</h2>
<ul><li>E-4012: the water tank sensor cannot detect the tank.</li>
<li>E-4021: the grinder is blocked.</li></ul>
</div>
</body></html>
"""

MARKDOWN = """# Halden Power Tools

## Warranty

All Halden cordless power tools come with a 36-month warranty from the date of purchase.

## Battery storage

Store the lithium-ion batteries at about 40 percent charge in a cool, dry place.
"""

TEXT = """Sourdough starter care.

Feed the starter equal weights of flour and water every day at room temperature.

A grey liquid on top, called hooch, means the starter is hungry.
"""

CSV = """id,title,text,team
pol-travel,Travel policy,Hotel costs are reimbursed up to 150 euros per night.,finance
pol-leave,Parental leave,Each parent may take up to 16 weeks of paid parental leave.,people
"""

JSONL_RECORDS = [
    {"id": "faq-1", "title": "Tides", "text": "Tides are caused by the pull of the Moon."},
    {"title": "Sky", "text": "The sky is blue because air scatters short wavelengths of light."},
]


def write_corpus(folder: Path) -> Path:
    """One file of each supported format under `folder` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manual.html").write_text(HTML)
    (folder / "tools.md").write_text(MARKDOWN)
    (folder / "bread.txt").write_text(TEXT)
    (folder / "policies.csv").write_text(CSV)
    (folder / "faq.jsonl").write_text("\n".join(json.dumps(r) for r in JSONL_RECORDS) + "\n")
    filler = ["The station is a laboratory where experiments run in microgravity."] * 14
    orbit = ["Orbit of the space station", "The station circles the Earth every 92 minutes."]
    crew = ["Crew life", "The crew sees about 16 sunrises a day on board the station."]
    write_pdf(
        folder / "space.pdf",
        [[*orbit, *filler], [*crew, *filler]],  # each page starts its own chunk
        title="Space Station Facts",
    )
    (folder / "sub").mkdir(exist_ok=True)
    write_docx(folder / "sub" / "router.docx")
    return folder
