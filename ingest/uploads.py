"""Documents from an uploaded file's bytes (the service's multipart ingest).

The same loaders as for files on disk: the bytes go to a private temporary file named
with the upload's extension. One uploaded file is one request item, so anything wrong in
it (unsupported type, corrupt, empty, a bad record line) raises `InvalidDocument` (400)
naming the file and line.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path, PurePosixPath

from ingest.errors import DocumentTooLarge, InvalidDocument, UnsupportedFormat
from ingest.loaders import MAX_FILE_BYTES, load_file
from ingest.models import SourceDocument
from ingest.records import RECORD_SUFFIXES, load_records
from ingest.sources import SUPPORTED_SUFFIXES


def documents_from_upload(
    filename: str, data: bytes, *, doc_id: str | None = None
) -> list[SourceDocument]:
    """The documents in one uploaded file: one, or one per record for .jsonl/.csv.

    The doc id is `doc_id`, else the file's name (records: their `id` field, else
    `<name>:<line>`); the source is the file's name.
    """
    name = PurePosixPath(filename.replace("\\", "/")).name or "upload.txt"
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFormat(
            f"{name}: unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            param="file",
        )
    if len(data) > MAX_FILE_BYTES:
        raise DocumentTooLarge(
            f"{name}: over the {MAX_FILE_BYTES // 2**20} MiB limit", param="file"
        )
    if not data.strip():
        raise InvalidDocument(f"{name}: empty file", param="file")
    with tempfile.TemporaryDirectory(prefix="lorag-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        if suffix in RECORD_SUFFIXES:
            if doc_id is not None:
                raise InvalidDocument(
                    f"{name}: doc_id cannot name a {suffix} file, it holds one document a record",
                    param="doc_id",
                )
            result = load_records(path, source=name)
            if result.failures:
                line, reason = result.failures[0]
                more = f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""
                raise InvalidDocument(f"{line}: {reason}{more}", param="file")
            return result.documents
        try:
            doc = load_file(
                path,
                doc_id=doc_id or name,
                source=name,
                content_hash=hashlib.sha256(data).hexdigest(),
                title=PurePosixPath(name).stem,
            )
        except InvalidDocument as exc:
            raise type(exc)(f"{name}: {exc.message}", param="file") from None
        return [doc]
