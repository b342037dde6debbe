"""`lorag ingest` while a running gateway holds the embedded store: the files are read and
parsed here, then sent to the gateway as one ingest job (operator API, admin key), and the
job's report is printed as if the ingest had run here (`--scrub-pii` travels as the job's
`scrub_pii`: the gateway scrubs and counts). `lorag tenants delete` likewise asks the gateway
to delete the tenant (it purges the tenant's knowledge in the store it holds)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ingest.errors import InvalidDocument, InvalidInput, StoreUnavailable
from ingest.models import IngestReport
from ingest.sources import discover

__all__ = ["forward_ingest", "forward_tenant_delete", "server_url"]

_POLL_S = 0.5


def _document_json(document: Any) -> dict[str, Any]:
    data = {
        "doc_id": document.doc_id,
        "text": document.text,
        "title": document.title,
        "source": document.source,
        "metadata": dict(document.metadata),
        "format": document.format,
        "content_hash": document.content_hash,
    }
    if document.blocks:
        data["blocks"] = [dataclasses.asdict(block) for block in document.blocks]
    return data


def server_url(host: str, port: int) -> str:
    """The URL of the local gateway listening on `host`:`port` (settings' host and port)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def forward_tenant_delete(url: str, admin_key: str, tenant: str) -> dict[str, Any]:
    """`DELETE /admin/tenants/{tenant}` on the running gateway; its answer, or the error."""
    try:
        answer = httpx.delete(
            f"{url}/admin/tenants/{tenant}", headers={"x-admin-key": admin_key}, timeout=300
        )
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"the running server at {url} does not answer: {exc}") from exc
    if answer.status_code != 200:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text
        error = StoreUnavailable if answer.status_code >= 500 else InvalidInput
        raise error(f"the server refused to delete tenant {tenant!r}: {message}")
    return dict(answer.json())


def forward_ingest(
    url: str,
    admin_key: str,
    tenant: str,
    paths: Sequence[str | Path],
    *,
    sync: bool,
    doc_id_prefix: str = "",
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    scrub_pii: bool = False,
    timeout_s: float = 3600.0,
    client: httpx.Client | None = None,
) -> IngestReport:
    """Send the files' documents to the gateway at `url` as one ingest job, wait for it and
    return its report. `client` (tests: the app in-process) replaces a new HTTP client."""
    found = discover(
        paths, doc_id_prefix=doc_id_prefix, include=include, exclude=exclude, sync=sync
    )
    if len(found.sync_scopes) > 1:
        raise InvalidInput(
            "--sync with several folders needs the store itself: sync one folder at a time "
            "while the server runs, or stop the server",
            param="sync",
        )
    documents, failed = [], list(found.failed)
    for pending in found.pending:
        try:
            document = _document_json(pending.load())
        except InvalidDocument as exc:
            failed.append((pending.source or pending.doc_id, exc.message))
            continue
        if pending.scope:  # the file's folder: a later --sync of it deletes it once gone
            document["scope"] = pending.scope
        documents.append(document)
    body: dict[str, Any] = {"documents": documents}
    if scrub_pii:
        body["scrub_pii"] = True
    notes: list[tuple[str, str]] = []
    if found.sync_scopes and failed:  # never delete what merely failed to parse here
        notes.append(("--sync", "not applied: some files failed"))
    elif found.sync_scopes:
        body["sync_scope"] = next(iter(found.sync_scopes))
    if not documents:
        report = IngestReport(scrubbed={} if scrub_pii else None)
    elif client is not None:
        report = _run_job(client, url, admin_key, tenant, body, timeout_s)
    else:
        with httpx.Client(base_url=url, timeout=300) as own:
            report = _run_job(own, url, admin_key, tenant, body, timeout_s)
    report.failed[:0] = failed
    report.skipped[:0] = [*found.skipped, *notes]
    return report


def _run_job(
    client: httpx.Client,
    url: str,
    admin_key: str,
    tenant: str,
    body: dict[str, Any],
    timeout_s: float,
) -> IngestReport:
    headers = {"x-admin-key": admin_key}
    try:
        answer = client.post(f"/admin/knowledge/{tenant}/documents", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise StoreUnavailable(f"the running server at {url} does not answer: {exc}") from exc
    if answer.status_code != 202:
        message = answer.json().get("error", {}).get("message", answer.text)
        raise InvalidInput(f"the server refused the ingest job: {message}")
    job_id = answer.json()["id"]
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/admin/knowledge/{tenant}/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(_POLL_S)
    if job["status"] != "succeeded" or job.get("report") is None:
        raise StoreUnavailable(f"ingest job {job_id} ended {job['status']}: {job.get('error')}")
    return IngestReport.from_dict(job["report"])
