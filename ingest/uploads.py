"""Documents from an uploaded file (the service's multipart ingest).

The same loaders as for files on disk: the upload is copied, piece by piece, to a private
temporary file named with the upload's extension, and never held in memory whole; copying
stops at the first piece past `MAX_FILE_BYTES`. One uploaded file is one request item, so
anything wrong in it (unsupported type, too large, corrupt, empty, a bad record line) raises
`InvalidDocument` (400) naming the file (and line).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ingest.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from ingest.loaders import MAX_FILE_BYTES, load_file
from ingest.models import SourceDocument
from ingest.records import RECORD_SUFFIXES, load_records
from ingest.sources import SUPPORTED_SUFFIXES

__all__ = [
    "COPY_PIECE_BYTES",
    "SavedUpload",
    "documents_from_saved",
    "documents_from_upload",
    "save_upload",
    "upload_name",
]

COPY_PIECE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SavedUpload:
    """An uploaded file copied to disk: its clean name, where it lies, its hash."""

    name: str
    path: Path
    content_hash: str


def upload_name(filename: str) -> str:
    """The file's own name (no folders); `UnsupportedFormat` if no loader reads its type."""
    name = PurePosixPath(filename.replace("\\", "/")).name or "upload.txt"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFormat(
            f"{name}: unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            param="file",
        )
    return name


def save_upload(filename: str, source: BinaryIO, folder: Path) -> SavedUpload:
    """Copy an upload from `source` into `folder` (a new file), hashing it on the way.

    Raises `DocumentTooLarge` as soon as more than `MAX_FILE_BYTES` were read (the rest is
    never read), `InvalidDocument` for an empty or blank file.
    """
    name = upload_name(filename)
    suffix = PurePosixPath(name).suffix.lower()
    handle, raw_path = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=folder)
    path = Path(raw_path)
    digest = hashlib.sha256()
    size = 0
    blank = True
    with open(handle, "wb") as out:
        while piece := source.read(COPY_PIECE_BYTES):
            size += len(piece)
            if size > MAX_FILE_BYTES:
                raise DocumentTooLarge(
                    f"{name}: over the {MAX_FILE_BYTES // 2**20} MiB limit", param="file"
                )
            blank = blank and not piece.strip()
            digest.update(piece)
            out.write(piece)
    if blank:
        raise InvalidDocument(f"{name}: empty file", param="file")
    return SavedUpload(name, path, digest.hexdigest())


def documents_from_saved(upload: SavedUpload, *, doc_id: str | None = None) -> list[SourceDocument]:
    """The documents in one saved upload: one, or one per record for .jsonl/.csv.

    The doc id is `doc_id`, else the file's name (records: their `id` field, else
    `<name>:<line>`); the source is the file's name.
    """
    name = upload.name
    suffix = upload.path.suffix.lower()
    if suffix in RECORD_SUFFIXES:
        if doc_id is not None:
            raise InvalidDocument(
                f"{name}: doc_id cannot name a {suffix} file, it holds one document a record",
                param="doc_id",
            )
        result = load_records(upload.path, source=name)
        if result.failures:
            line, reason = result.failures[0]
            more = f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""
            raise InvalidDocument(f"{line}: {reason}{more}", param="file")
        return result.documents
    try:
        doc = load_file(
            upload.path,
            doc_id=doc_id or name,
            source=name,
            content_hash=upload.content_hash,
            title=PurePosixPath(name).stem,
        )
    except InvalidDocument as exc:
        raise type(exc)(f"{name}: {exc.message}", param="file") from None
    return [doc]


def documents_from_upload(
    filename: str, data: bytes, *, doc_id: str | None = None
) -> list[SourceDocument]:
    """The documents in an uploaded file given as bytes (see `documents_from_saved`)."""
    with tempfile.TemporaryDirectory(prefix="lorag-upload-") as folder:
        saved = save_upload(filename, io.BytesIO(data), Path(folder))
        return documents_from_saved(saved, doc_id=doc_id)
