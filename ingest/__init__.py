"""lorag's knowledge base: documents in, tenant-scoped hybrid search out.

    loaders, records, uploads   files and uploads -> SourceDocument (txt, md, html, pdf, docx,
                                jsonl, csv); bad input raises InvalidDocument per file
    scrubbing                   personal data -> placeholders before chunking (scrub_pii)
    chunking                    blocks -> chunks sized in the embedding model's tokens
    embedding                   dense (sentence-transformers) + sparse (BM25) vectors
    store/                      the Store interface; qdrant-edge folder or Qdrant server
    pipeline                    skip unchanged, upsert before removing stale, sync scopes
    knowledge                   KnowledgeBase: the API the service and the CLI call
    jobs                        background ingest jobs persisted as JSON
    evaluation, cli             `lorag eval retrieval`, `lorag ingest`

Heavy dependencies (torch, sentence-transformers, qdrant) load when a knowledge base opens.
"""

from ingest.errors import IngestError
from ingest.knowledge import KnowledgeBase, open_knowledge_base
from ingest.models import DocumentInfo, Hit, IngestReport, Job, JobStatus, SourceDocument

__all__ = [
    "DocumentInfo",
    "Hit",
    "IngestError",
    "IngestReport",
    "Job",
    "JobStatus",
    "KnowledgeBase",
    "SourceDocument",
    "open_knowledge_base",
]
