"""Personal data scrubbed from a document before it is chunked, embedded and stored.

With scrubbing on (`scrub_pii` on a job, `lorag ingest --scrub-pii`, or every ingest with
`LORAG_INGEST_SCRUB_PII`), what `lorag.pii` finds in a document's text, headings, title and
metadata values becomes a placeholder (`<EMAIL>`, `<PHONE>`, `<CARD>`, `<IBAN>`) before
chunking: the stored chunk text, the dense and the BM25 vectors, search results and the
prompts built from them never hold the original. The document id and source are kept as given:
they identify the document (updates, deletes, sync), they are not its content.

The document keeps its content hash (that of the original): the pipeline tag of its chunks
says they were scrubbed (`SCRUBBED_TAG`), so turning scrubbing on or off rewrites a document
that is otherwise unchanged instead of skipping it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from ingest.models import SourceDocument
from lorag.pii import scrub_text

__all__ = ["SCRUBBED_TAG", "scrub_document", "scrubbed_pipeline"]

SCRUBBED_TAG = "|pii"
"""Appended to the pipeline tag of the chunks of a scrubbed document."""


def scrubbed_pipeline(pipeline: str, scrub_pii: bool) -> str:
    """The pipeline tag an ingest stores on its chunks (and compares to skip unchanged ones)."""
    return pipeline + SCRUBBED_TAG if scrub_pii else pipeline


def scrub_document(doc: SourceDocument, counts: Counter[str]) -> SourceDocument:
    """`doc` with personal data replaced in its text, blocks, title and metadata values
    (keys are kept); adds what it found to `counts`."""
    blocks = None
    if doc.blocks is not None:
        blocks = tuple(
            dataclasses.replace(block, text=scrub_text(block.text, counts)) for block in doc.blocks
        )
    return dataclasses.replace(
        doc,
        text=scrub_text(doc.text, counts),
        title=scrub_text(doc.title, counts) if doc.title is not None else None,
        metadata=_scrub_value(dict(doc.metadata), counts),
        blocks=blocks,
    )


def _scrub_value(value: Any, counts: Counter[str]) -> Any:
    """Every string inside a JSON value scrubbed (its nesting is bounded where it is read)."""
    if isinstance(value, str):
        return scrub_text(value, counts)
    if isinstance(value, dict):
        return {key: _scrub_value(item, counts) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item, counts) for item in value]
    return value
