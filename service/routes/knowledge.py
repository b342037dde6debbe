"""`/v1/knowledge/...`: a tenant's documents, ingest jobs and search (tenant API key).

`/admin/knowledge/{tenant}/...` offers the same ingest to operators (the CLI uses it when the
running server holds the embedded store). An ingest asks for personal data to be scrubbed with
`scrub_pii`: a field of the JSON body, or a form field ("true"/"false") beside uploaded files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

from adapters.models import Tenant
from ingest.errors import TooManyJobs
from ingest.models import Block, SourceDocument
from ingest.uploads import documents_from_saved, save_upload
from service.auth import require_admin, require_tenant
from service.errors import InvalidRequest, envelope
from service.executors import PoolKind
from service.protocol.knowledge import DocumentIn, IngestRequest, SearchRequest
from service.state import app_state
from service.validation import parse_body

if TYPE_CHECKING:
    from ingest.knowledge import KnowledgeBase

__all__ = ["router"]

router = APIRouter()
_MAX_FIELD_BYTES = 64 * 1024
"""Largest non-file form field (doc_id); files are capped per file by `save_upload`."""
RETRY_AFTER_S = "5"
"""`Retry-After` of a 429 (the tenant's ingest queue is full), in seconds."""
_T = TypeVar("_T")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


async def _knowledge(request: Request) -> KnowledgeBase:
    return await app_state(request).knowledge()


async def _off_loop(
    request: Request, kind: PoolKind, call: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T:
    """A blocking call on the `kind` worker threads: searches on the retrieval pool, so
    that no burst of uploads or deletes (the knowledge pool) holds them up."""
    return await app_state(request).executors.run(kind, call, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class _Submission:
    documents: list[SourceDocument]
    sync_scope: str | None = None
    doc_scopes: dict[str, str] = field(default_factory=dict)
    scrub_pii: bool = False


async def _documents_from_request(request: Request) -> _Submission:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_part_size=_MAX_FIELD_BYTES)
        try:
            scrub_pii = _form_flag(form, "scrub_pii")
            return _Submission(await _documents_from_form(request, form), scrub_pii=scrub_pii)
        finally:
            await form.close()
    body = parse_body(IngestRequest, await request.body())
    documents = [_source_document(doc) for doc in body.documents]
    scopes = {doc.doc_id: doc.scope for doc in body.documents if doc.scope is not None}
    return _Submission(documents, body.sync_scope, scopes, body.scrub_pii)


def _form_flag(form: FormData, name: str) -> bool:
    """A true/false form field (absent: false)."""
    raw = form.get(name)
    if raw is None:
        return False
    value = raw.strip().lower() if isinstance(raw, str) else None
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise InvalidRequest(f"{name} must be true or false", param=name)


async def _documents_from_form(request: Request, form: FormData) -> list[SourceDocument]:
    """The uploaded files' documents. Starlette spools each file to disk; each is copied to
    a private folder piece by piece (stopping past the per-file cap), then loaded there."""
    uploads = [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)]
    if not uploads:
        raise InvalidRequest("send one or more files in the form field 'file'", param="file")
    raw_id = form.get("doc_id")
    doc_id = str(raw_id) if raw_id else None
    if doc_id is not None and len(uploads) > 1:
        raise InvalidRequest("doc_id can only name a single uploaded file", param="doc_id")
    documents: list[SourceDocument] = []
    with tempfile.TemporaryDirectory(prefix="lorag-upload-") as folder:
        for upload in uploads:
            name = upload.filename or "upload.txt"
            saved = await _off_loop(
                request, "knowledge", save_upload, name, upload.file, Path(folder)
            )
            documents += await _off_loop(
                request, "knowledge", documents_from_saved, saved, doc_id=doc_id
            )
            saved.path.unlink()
    return documents


def _source_document(doc: DocumentIn) -> SourceDocument:
    fields = doc.model_dump(exclude={"blocks", "scope"})
    if doc.blocks:
        fields["blocks"] = tuple(Block(**block.model_dump()) for block in doc.blocks)
    return SourceDocument(**fields)


async def _submit(request: Request, tenant: str) -> JSONResponse:
    sent = await _documents_from_request(request)
    knowledge = await _knowledge(request)
    try:
        job = await _off_loop(
            request,
            "knowledge",
            knowledge.jobs.submit,
            tenant,
            sent.documents,
            sent.sync_scope,
            sent.doc_scopes,
            scrub_pii=sent.scrub_pii,
        )
    except TooManyJobs as exc:  # OpenAI's envelope for a rate limit, with when to retry
        body = envelope(exc.message, type="requests", code=exc.code)
        return JSONResponse(body, status_code=429, headers={"retry-after": RETRY_AFTER_S})
    return JSONResponse(job.to_dict(), status_code=202)


@router.post("/v1/knowledge/documents")
async def ingest(request: Request, tenant: Tenant = Depends(require_tenant)) -> JSONResponse:
    return await _submit(request, tenant.id)


@router.get("/v1/knowledge/jobs/{job_id}")
async def job(
    job_id: str, request: Request, tenant: Tenant = Depends(require_tenant)
) -> dict[str, Any]:
    return (await _knowledge(request)).jobs.get(tenant.id, job_id).to_dict()


@router.get("/v1/knowledge/documents")
async def documents(request: Request, tenant: Tenant = Depends(require_tenant)) -> dict[str, Any]:
    knowledge = await _knowledge(request)
    found = await _off_loop(request, "knowledge", knowledge.list_documents, tenant.id)
    return {"object": "list", "data": [doc.to_dict() for doc in found]}


@router.delete("/v1/knowledge/documents/{doc_id:path}")
async def delete(
    doc_id: str, request: Request, tenant: Tenant = Depends(require_tenant)
) -> dict[str, Any]:
    knowledge = await _knowledge(request)
    await _off_loop(request, "knowledge", knowledge.delete_document, tenant.id, doc_id)
    return {"deleted": doc_id}


@router.post("/v1/knowledge/search")
async def search(
    body: SearchRequest, request: Request, tenant: Tenant = Depends(require_tenant)
) -> dict[str, Any]:
    knowledge = await _knowledge(request)
    hits = await _off_loop(
        request,
        "retrieval",
        knowledge.search,
        tenant.id,
        body.query,
        top_k=body.top_k,
        mode=body.mode,
        filter=body.filter,
        score_threshold=body.score_threshold,
    )
    return {"object": "list", "data": [hit.to_dict() for hit in hits]}


@router.post("/admin/knowledge/{tenant_id}/documents", dependencies=[Depends(require_admin)])
async def admin_ingest(tenant_id: str, request: Request) -> JSONResponse:
    await _off_loop(request, "registry", app_state(request).registry.get_tenant, tenant_id)
    return await _submit(request, tenant_id)


@router.get("/admin/knowledge/{tenant_id}/jobs/{job_id}", dependencies=[Depends(require_admin)])
async def admin_job(tenant_id: str, job_id: str, request: Request) -> dict[str, Any]:
    return (await _knowledge(request)).jobs.get(tenant_id, job_id).to_dict()
