"""The knowledge base's errors, on `lorag.errors`. Each has an HTTP `status`, a `code`, a `param`.

    lorag.errors.LoragError
    └── IngestError                        500  any knowledge-base error
        ├── InvalidInput (InvalidRequest)  400  a request argument is wrong
        │   ├── InvalidTenant              400  tenant id breaks `lorag.names.TENANT_ID_RULE`
        │   ├── InvalidFilter              400  a search filter key or value (core's too)
        │   └── InvalidDataset             400  an evaluation folder is not in BEIR's layout
        ├── InvalidDocument (InvalidRequest) 400  one document cannot be ingested (corrupt,
        │   │                                     empty, binary)
        │   ├── UnsupportedFormat          400  no loader for this file type
        │   └── DocumentTooLarge           400  over the size limit of one document
        ├── NotFound (NotFound)            404
        │   ├── DocumentNotFound           404  no such document for this tenant
        │   ├── JobNotFound                404  no such ingest job for this tenant
        │   └── TenantNotFound             404  the registry has no such tenant (`lorag ingest`)
        ├── StoreLocked (Conflict)         409  another process holds the embedded store's folder
        ├── TooManyJobs (TooManyRequests)  429  the tenant has the most ingest jobs queued already
        ├── EmbeddingModelError (ServerError) 500  the embedding model cannot be loaded
        ├── StoreIncompatible (ServerError)   500  the store was built with another vector size
        └── StoreUnavailable (Unavailable)    503  the Qdrant server does not answer
            └── StoreFull                  503  the embedded store's disk is full: writes refused

In brackets: the `lorag.errors` class each one also is. The builtin bases of before stay
(`InvalidInput` is a ValueError, `NotFound` a LookupError, `StoreLocked` a RuntimeError...).
"""

from __future__ import annotations

from lorag import errors as core

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


class IngestError(core.LoragError):
    """Base of every knowledge-base error."""

    status = 500
    code = "ingest_error"


class InvalidInput(core.InvalidRequest, IngestError):
    status = 400
    code = "invalid_input"


class InvalidTenant(InvalidInput):
    code = "invalid_tenant"


class InvalidFilter(core.InvalidFilter, InvalidInput):
    code = "invalid_filter"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


class InvalidDocument(core.InvalidRequest, IngestError):
    status = 400
    code = "invalid_document"


class UnsupportedFormat(InvalidDocument):
    code = "unsupported_format"


class DocumentTooLarge(InvalidDocument):
    code = "document_too_large"


class NotFound(core.NotFound, IngestError):
    status = 404
    code = "not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class TenantNotFound(NotFound):
    code = "tenant_not_found"


class StoreLocked(core.Conflict, IngestError, RuntimeError):
    status = 409
    code = "store_locked"


class TooManyJobs(core.TooManyRequests, IngestError):
    status = 429
    code = "rate_limit_exceeded"


class EmbeddingModelError(core.ServerError, IngestError, RuntimeError):
    status = 500
    code = "embedding_model_error"


class StoreIncompatible(core.ServerError, IngestError, RuntimeError):
    status = 500
    code = "store_incompatible"


class StoreUnavailable(core.Unavailable, IngestError, ConnectionError):
    status = 503
    code = "store_unavailable"


class StoreFull(StoreUnavailable):
    """Less free space than the embedded store keeps (`ingest.store.disk_space`)."""
