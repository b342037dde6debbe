"""The knowledge base's errors. Each carries an HTTP `status`, a short `code` and a `param`.

    IngestError                        500  any knowledge-base error
    ├── InvalidInput (ValueError)      400  a request argument is wrong
    │   ├── InvalidTenant              400  tenant id does not match ^[a-z0-9][a-z0-9_-]{0,63}$
    │   ├── InvalidFilter              400  a search filter key or value is not allowed
    │   └── InvalidDataset             400  an evaluation folder is not in BEIR's layout
    ├── InvalidDocument (ValueError)   400  one document cannot be ingested (corrupt, empty, binary)
    │   ├── UnsupportedFormat          400  no loader for this file type
    │   └── DocumentTooLarge           400  over the size limit of one document
    ├── NotFound (LookupError)         404
    │   ├── DocumentNotFound           404  no such document for this tenant
    │   ├── JobNotFound                404  no such ingest job for this tenant
    │   └── TenantNotFound             404  the registry has no such tenant (`lorag ingest`)
    ├── StoreLocked (RuntimeError)     409  another process holds the embedded store's folder
    ├── TooManyJobs                    429  the tenant has the most ingest jobs queued already
    ├── EmbeddingModelError (RuntimeError) 500  the embedding model cannot be loaded
    ├── StoreIncompatible (RuntimeError) 500  the store was built with another vector size
    └── StoreUnavailable (ConnectionError) 503  the Qdrant server does not answer
        └── StoreFull                  503  the embedded store's disk is full: writes refused

`service.errors.to_envelope` maps them to OpenAI error envelopes by `status`, `code`, `param`.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every knowledge-base error."""

    status: int = 500
    code: str = "ingest_error"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(IngestError, ValueError):
    status = 400
    code = "invalid_input"


class InvalidTenant(InvalidInput):
    code = "invalid_tenant"


class InvalidFilter(InvalidInput):
    code = "invalid_filter"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


class InvalidDocument(IngestError, ValueError):
    status = 400
    code = "invalid_document"


class UnsupportedFormat(InvalidDocument):
    code = "unsupported_format"


class DocumentTooLarge(InvalidDocument):
    code = "document_too_large"


class NotFound(IngestError, LookupError):
    status = 404
    code = "not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class StoreLocked(IngestError, RuntimeError):
    status = 409
    code = "store_locked"


class TooManyJobs(IngestError):
    status = 429
    code = "rate_limit_exceeded"


class EmbeddingModelError(IngestError, RuntimeError):
    status = 500
    code = "embedding_model_error"


class StoreIncompatible(IngestError, RuntimeError):
    status = 500
    code = "store_incompatible"


class StoreUnavailable(IngestError, ConnectionError):
    status = 503
    code = "store_unavailable"


class StoreFull(StoreUnavailable):
    """Less free space than the embedded store keeps (`ingest.store.disk_space`)."""


__all__ = [
    "DocumentNotFound",
    "DocumentTooLarge",
    "EmbeddingModelError",
    "IngestError",
    "InvalidDataset",
    "InvalidDocument",
    "InvalidFilter",
    "InvalidInput",
    "InvalidTenant",
    "JobNotFound",
    "NotFound",
    "StoreFull",
    "StoreIncompatible",
    "StoreLocked",
    "StoreUnavailable",
    "TenantNotFound",
    "TooManyJobs",
    "UnsupportedFormat",
]
