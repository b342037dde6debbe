"""What an ingest reads: files found under paths, or given documents, as `PendingDocument`s.

A pending document knows its id, content hash, source and sync scope before it is parsed:
for files the hash is the hash of the file's bytes, so an unchanged file is skipped without
parsing it. `load()` parses it and may raise `InvalidDocument`.

Doc ids of files are `prefix + path relative to the root` (posix); a directory argument is
its own root, a file argument's root is its folder. The sync scope of a file is its root.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import InvalidDocument
from ingest.loaders import FILE_LOADERS, check_size, load_file
from ingest.models import SourceDocument
from ingest.records import RECORD_SUFFIXES, load_records

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Discovery",
    "PendingDocument",
    "discover",
    "path_scope",
    "pending_documents",
]

SUPPORTED_SUFFIXES = (*FILE_LOADERS, *RECORD_SUFFIXES)


@dataclass(frozen=True, slots=True)
class PendingDocument:
    doc_id: str
    content_hash: str
    source: str | None
    scope: str | None
    load: Callable[[], SourceDocument]


@dataclass(slots=True)
class Discovery:
    """Pending documents plus what could not be read or was left out, per file."""

    pending: list[PendingDocument] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sync_scopes: set[str] = field(default_factory=set)
    protected_sources: set[str] = field(default_factory=set)


def _same(doc: SourceDocument) -> SourceDocument:
    return doc


def pending_documents(
    docs: Iterable[SourceDocument],
    scope: str | None,
    doc_scopes: Mapping[str, str] | None = None,
) -> list[PendingDocument]:
    """Given documents as pending ones: in `scope` (a sync's), else in their own scope from
    `doc_scopes` (by doc id), else in none (a document keeps the scope it had)."""
    scopes = doc_scopes or {}
    return [
        PendingDocument(
            doc.doc_id,
            doc.content_hash or "",
            doc.source,
            scope or scopes.get(doc.doc_id),
            functools.partial(_same, doc),
        )
        for doc in docs
    ]


def path_scope(root: Path, doc_id_prefix: str) -> str:
    scope = f"path:{root.resolve().as_posix()}"
    return f"{scope}|prefix:{doc_id_prefix}" if doc_id_prefix else scope


def _walk(root: Path) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _wanted(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatch(rel, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatch(rel, pattern) for pattern in exclude)


def discover(
    paths: Sequence[str | Path],
    *,
    doc_id_prefix: str = "",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    sync: bool = False,
) -> Discovery:
    """Find the files under `paths` and make a pending document (or several) of each."""
    found = Discovery()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            root, files, explicit = path, list(_walk(path)), False
            if sync:
                found.sync_scopes.add(path_scope(root, doc_id_prefix))
        elif path.is_file():
            root, files, explicit = path.parent, [path], True
        else:
            found.failed.append((str(raw), "no such file or directory"))
            continue
        scope = path_scope(root, doc_id_prefix)
        for file in files:
            rel = file.relative_to(root).as_posix()
            if not explicit and not _wanted(rel, include, exclude):
                continue
            suffix = file.suffix.lower()
            if suffix not in SUPPORTED_SUFFIXES:
                reason = f"unsupported file type {suffix or '(none)'!r}"
                (found.failed if explicit else found.skipped).append((rel, reason))
                continue
            _add_file(found, file, rel, doc_id_prefix, scope)
    return found


def _add_file(found: Discovery, file: Path, rel: str, prefix: str, scope: str) -> None:
    try:
        check_size(file)
        if file.suffix.lower() in RECORD_SUFFIXES:
            records = load_records(file, source=rel, doc_id_prefix=prefix)
        else:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
    except InvalidDocument as exc:
        found.failed.append((rel, exc.message))
        found.protected_sources.add(rel)
        return
    except OSError as exc:
        found.failed.append((rel, f"cannot read file: {exc.strerror or exc}"))
        found.protected_sources.add(rel)
        return
    if file.suffix.lower() in RECORD_SUFFIXES:
        found.pending.extend(pending_documents(records.documents, scope))
        found.failed.extend(records.failures)
        if records.failures:
            found.protected_sources.add(rel)
        return

    def load(file: Path = file, doc_id: str = prefix + rel, digest: str = digest) -> SourceDocument:
        return load_file(file, doc_id=doc_id, source=rel, content_hash=digest)

    found.pending.append(PendingDocument(prefix + rel, digest, rel, scope, load))
