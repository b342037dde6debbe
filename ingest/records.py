"""Record files: .jsonl (one JSON object a line) and .csv (a header row), one document a record.

The text is the first of the fields `text`, `content`, `body`, `passage`; `title` is the
title; the id is `id` (or BEIR's `_id`), else `<source>:<line>`; every other field goes into
the document's metadata. A bad record is reported with its line; the others are kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import InvalidDocument
from ingest.loaders import MAX_DOCUMENT_CHARS, MAX_FILE_BYTES, decode_text
from ingest.models import SourceDocument
from lorag.json_nesting import nesting_depth

__all__ = [
    "ID_FIELDS",
    "MAX_RECORD_DEPTH",
    "RECORD_SUFFIXES",
    "TEXT_FIELDS",
    "RecordsResult",
    "load_records",
    "record_document",
]

TEXT_FIELDS = ("text", "content", "body", "passage")
ID_FIELDS = ("id", "_id")
RECORD_SUFFIXES = (".jsonl", ".csv")
MAX_RECORD_DEPTH = 32
"""Deepest nesting of arrays/objects in one JSONL record (its metadata is stored as is)."""

# csv refuses cells over 128 KiB by default, and a refused cell ended the file's reading.
# No cell can be larger than its file, and files are at most MAX_FILE_BYTES: with that
# limit every cell is read, and a too-long text is refused per record (MAX_DOCUMENT_CHARS).
# The limit is process-wide; it is only ever raised here.
if csv.field_size_limit() < MAX_FILE_BYTES:
    csv.field_size_limit(MAX_FILE_BYTES)


@dataclass
class RecordsResult:
    documents: list[SourceDocument] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def record_document(
    record: Mapping[str, Any], *, source: str, line: int, doc_id_prefix: str = ""
) -> SourceDocument:
    """One record as a document; raises `InvalidDocument` naming the missing/bad field."""
    text_key = next((k for k in TEXT_FIELDS if k in record), None)
    if text_key is None:
        raise InvalidDocument(f"no text field (one of {', '.join(TEXT_FIELDS)})", param="text")
    text = record[text_key]
    if not isinstance(text, str) or not text.strip():
        raise InvalidDocument(f"field {text_key!r} is empty or not a string", param=text_key)
    if len(text) > MAX_DOCUMENT_CHARS:
        raise InvalidDocument(f"field {text_key!r} is over {MAX_DOCUMENT_CHARS} characters")
    id_key = next((k for k in ID_FIELDS if record.get(k) not in (None, "")), None)
    doc_id = str(record[id_key]) if id_key else f"{source}:{line}"
    title = record.get("title")
    skip = {text_key, "title", *ID_FIELDS}
    metadata = {k: v for k, v in record.items() if k not in skip and v not in (None, "")}
    return SourceDocument(
        doc_id=doc_id_prefix + doc_id,
        text=text,
        title=str(title).strip() if title else None,
        source=source,
        metadata=metadata,
        format="text",
    )


def _jsonl_records(text: str) -> Iterator[tuple[int, Any]]:
    too_deep = ValueError(f"nested too deeply (over {MAX_RECORD_DEPTH} levels of arrays/objects)")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, exc
        except RecursionError:
            yield number, too_deep
        else:
            yield number, too_deep if nesting_depth(record) > MAX_RECORD_DEPTH else record


def _csv_records(text: str) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the reader goes on with the next line
            yield reader.line_num, exc
            continue
        if None in row:
            yield reader.line_num, ValueError("more cells than header columns")
        else:
            yield reader.line_num, row


def load_records(path: Path, *, source: str, doc_id_prefix: str = "") -> RecordsResult:
    """All documents of a .jsonl/.csv file, plus `(source:line, reason)` for bad records."""
    result = RecordsResult()
    data = path.read_bytes()
    if not data.strip():
        result.failures.append((source, "empty file"))
        return result
    try:
        text = decode_text(data)
    except InvalidDocument as exc:
        result.failures.append((source, exc.message))
        return result
    records = _jsonl_records(text) if path.suffix.lower() == ".jsonl" else _csv_records(text)
    for line, record in records:
        name = f"{source}:{line}"
        if isinstance(record, Exception):
            result.failures.append((name, f"unreadable record: {record}"))
            continue
        if not isinstance(record, dict):
            result.failures.append((name, "record is not a JSON object"))
            continue
        try:
            doc = record_document(record, source=source, line=line, doc_id_prefix=doc_id_prefix)
        except InvalidDocument as exc:
            result.failures.append((name, exc.message))
            continue
        result.documents.append(doc)
    return result
