"""`JobRunner`: background ingest jobs, one at a time per knowledge base, persisted as JSON.

`submit` queues documents and returns at once with a `Job` (status queued); one worker
thread runs the jobs in order (running -> succeeded/failed, with the ingest report). Each
job is a JSON file under the jobs folder, written atomically at every change, so a restart
still shows it; a job found queued or running at start died with its process and is
marked failed ("interrupted"). A tenant sees only its own jobs: another tenant's job id is
`JobNotFound`, the same as an unknown one. `purge(tenant)` forgets a deleted tenant's jobs:
their records go, queued ones never run and a running one stops before its next document.

A job may ask for personal data to be scrubbed (`scrub_pii`); a runner made with
`scrub_pii=True` (the knowledge base's policy, `LORAG_INGEST_SCRUB_PII`) scrubs every job and
records it so.

Limits: a tenant has at most `max_queued` jobs queued (`TooManyJobs`, 429, beyond), and only
its newest `keep` finished job records are kept. Faults: the worker outlives any error in a
job (a full disk, a store error, a panic in native code): that job ends failed with the
reason (never a path), the next one runs. A job whose record cannot be written (disk full)
fails in memory; a job that cannot be recorded at all is refused (`StoreUnavailable`, 503).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ingest.errors import IngestError, InvalidInput, JobNotFound, StoreUnavailable, TooManyJobs
from ingest.models import IngestReport, Job, JobStatus, SourceDocument, check_tenant
from ingest.pipeline import utc_now

__all__ = [
    "INTERRUPTED",
    "KEEP_JOBS_PER_TENANT",
    "MAX_QUEUED_PER_TENANT",
    "DocumentIngestor",
    "JobRunner",
    "remove_job_records",
]

log = logging.getLogger(__name__)

KEEP_JOBS_PER_TENANT = 100
"""Finished job records kept per tenant; older ones are removed (default of `keep`)."""
MAX_QUEUED_PER_TENANT = 16
"""Jobs a tenant may have queued (not yet running) at once (default of `max_queued`)."""
INTERRUPTED = "interrupted: the process stopped before the job finished"
_JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)
_Item = tuple[str, list[SourceDocument], dict[str, str]]
"""A queued job: its id, its documents, their scopes by doc id."""


class DocumentIngestor(Protocol):
    """What a job runs on: `ingest.knowledge.KnowledgeBase` (which owns its `JobRunner`, so
    this module does not import it: the dependency points one way, knowledge -> jobs)."""

    def ingest_documents(
        self,
        tenant: str,
        docs: Sequence[SourceDocument],
        *,
        sync_scope: str | None = ...,
        doc_scopes: Mapping[str, str] | None = ...,
        cancel: threading.Event | None = ...,
        scrub_pii: bool = ...,
    ) -> IngestReport: ...


class JobRunner:
    """Runs submitted ingest jobs of a knowledge base in a background thread."""

    def __init__(
        self,
        kb: DocumentIngestor,
        jobs_dir: Path,
        *,
        keep: int = KEEP_JOBS_PER_TENANT,
        max_queued: int = MAX_QUEUED_PER_TENANT,
        scrub_pii: bool = False,
    ) -> None:
        if keep < 1 or max_queued < 1:
            raise InvalidInput("keep and max_queued must be at least 1")
        self._kb = kb
        self._dir = Path(jobs_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._keep = keep
        self._max_queued = max_queued
        self._scrub_pii = scrub_pii
        self._jobs: dict[str, Job] = {}
        self._changed = threading.Condition()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._stop = threading.Event()
        self._running: tuple[str, threading.Event] | None = None  # (tenant, its cancel event)
        self._load()
        self._thread = threading.Thread(target=self._work, name="lorag-ingest-jobs", daemon=True)
        self._thread.start()

    # --- public -------------------------------------------------------------------------------
    def submit(
        self,
        tenant: str,
        docs: Sequence[SourceDocument],
        sync_scope: str | None = None,
        doc_scopes: Mapping[str, str] | None = None,
        *,
        scrub_pii: bool = False,
    ) -> Job:
        """Queue an ingest of `docs` for `tenant`; returns the queued job.

        `doc_scopes` (doc id -> scope) records where documents came from, for a later sync
        (see `KnowledgeBase.ingest_documents`); `scrub_pii` replaces personal data before the
        documents are stored (always, on a runner made with `scrub_pii=True`). `TooManyJobs`
        when the tenant has `max_queued` jobs queued already; `StoreUnavailable` when the job
        cannot be recorded (the disk is full)."""
        check_tenant(tenant)
        if self._stop.is_set():
            raise InvalidInput("the job runner is closed")
        docs = list(docs)
        for doc in docs:
            if not isinstance(doc, SourceDocument):
                raise InvalidInput("documents must be SourceDocument objects", param="documents")
        scopes = dict(doc_scopes or {})
        with self._changed:
            mine = [job for job in self._jobs.values() if job.tenant == tenant]
            queued = sum(1 for job in mine if job.status == JobStatus.QUEUED)
            if queued >= self._max_queued:
                raise TooManyJobs(
                    f"tenant {tenant!r} has {queued} ingest jobs queued, the most allowed: "
                    "retry once one of them has started"
                )
            job = Job(
                id=f"job_{uuid.uuid4().hex}",
                tenant=tenant,
                status=JobStatus.QUEUED,
                documents=len(docs),
                created_at=_created_now(),
                sync_scope=sync_scope,
                scrub_pii=bool(scrub_pii) or self._scrub_pii,
            )
            try:
                self._write(job)
            except OSError as exc:
                log.error("cannot record a new ingest job in %s: %s", self._dir, exc)
                raise StoreUnavailable(
                    f"the ingest job cannot be recorded ({_reason(exc)}); retry later"
                ) from None
            self._jobs[job.id] = job
            self._queue.put((job.id, docs, scopes))
            self._changed.notify_all()
            return replace(job)

    def get(self, tenant: str, job_id: str) -> Job:
        check_tenant(tenant)
        with self._changed:
            job = self._jobs.get(job_id) if isinstance(job_id, str) else None
            if job is None or job.tenant != tenant:
                raise JobNotFound(f"no ingest job {job_id!r}", param="job_id")
            return replace(job)

    def list(self, tenant: str) -> list[Job]:
        """The tenant's jobs, newest first."""
        check_tenant(tenant)
        with self._changed:
            jobs = [replace(job) for job in self._jobs.values() if job.tenant == tenant]
        return sorted(jobs, key=lambda job: job.created_at, reverse=True)

    def wait(self, tenant: str, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job has finished (or `timeout` seconds passed); returns it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                job = self.get(tenant, job_id)
                if job.status in _FINISHED:
                    return job
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return job
                self._changed.wait(left)

    def purge(self, tenant: str) -> int:
        """Forget every job of `tenant` (being deleted): records go from memory and disk,
        queued jobs are skipped, the running one is told to stop. Returns how many went.

        The running job may still be writing its current document: the caller deletes the
        tenant's points after it (`KnowledgeBase.purge_tenant` waits for the ingest lock)."""
        check_tenant(tenant)
        with self._changed:
            if self._running is not None and self._running[0] == tenant:
                self._running[1].set()
            for job_id in [key for key, job in self._jobs.items() if job.tenant == tenant]:
                del self._jobs[job_id]
            removed = remove_job_records(self._dir, tenant)
            self._changed.notify_all()
        return removed

    def close(self, timeout: float | None = 60.0) -> None:
        """Stop: the running job stops after its current document (failed: interrupted),
        queued jobs are marked failed."""
        self._stop.set()
        with self._changed:
            if self._running is not None:
                self._running[1].set()
        self._queue.put(None)
        self._thread.join(timeout)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._finish(item[0], JobStatus.FAILED, error=INTERRUPTED)

    # --- worker -------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                if item is not None:
                    self._finish(item[0], JobStatus.FAILED, error=INTERRUPTED)
                return
            try:
                self._run(*item)
            except BaseException as exc:  # the worker must outlive any job
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                log.exception("ingest job %s broke the worker's bookkeeping", item[0])
                self._finish(item[0], JobStatus.FAILED, error=_internal(exc))
            finally:
                with self._changed:
                    self._running = None

    def _run(
        self, job_id: str, docs: builtins.list[SourceDocument], scopes: dict[str, str]
    ) -> None:
        cancel = threading.Event()
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:  # purged with its tenant while queued
                return
            job.status = JobStatus.RUNNING
            job.started_at = utc_now()
            self._running = (job.tenant, cancel)
            if self._stop.is_set():
                cancel.set()
            self._changed.notify_all()
            try:
                self._write(job)
            except OSError as exc:  # the disk is full: do not ingest what cannot be tracked
                log.error("cannot record ingest job %s as running: %s", job_id, exc)
                error = f"the job could not be recorded ({_reason(exc)}); nothing was ingested"
                self._finish(job_id, JobStatus.FAILED, error=error)
                return
        try:
            report = self._kb.ingest_documents(
                job.tenant,
                docs,
                sync_scope=job.sync_scope,
                doc_scopes=scopes,
                cancel=cancel,
                scrub_pii=job.scrub_pii,
            )
        except IngestError as exc:
            self._finish(job_id, JobStatus.FAILED, error=exc.message)
        except OSError as exc:
            log.error("ingest job %s stopped: %s", job_id, exc)
            self._finish(job_id, JobStatus.FAILED, error=f"the ingest stopped: {_reason(exc)}")
        except BaseException as exc:  # a bug, or a panic in native code (a BaseException)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            log.exception("ingest job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=_internal(exc))
        else:
            if report.interrupted:
                self._finish(job_id, JobStatus.FAILED, report=report, error=INTERRUPTED)
            else:
                self._finish(job_id, JobStatus.SUCCEEDED, report=report)

    def _finish(self, job_id: str, status: JobStatus, **fields: object) -> None:
        """The job's outcome, in memory first; a record that cannot be written (disk full)
        turns a success into a failure that says so. Then the tenant's oldest records go."""
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:  # purged with its tenant: nothing to record
                return
            job.status = status
            job.finished_at = utc_now()
            for name, value in fields.items():
                setattr(job, name, value)
            self._changed.notify_all()
            try:
                self._write(job)
            except OSError as exc:
                log.error("cannot record the end of ingest job %s: %s", job_id, exc)
                unsaved = f"its record could not be saved ({_reason(exc)})"
                job.error = (
                    f"the documents were ingested, but {unsaved}"
                    if job.status == JobStatus.SUCCEEDED
                    else f"{job.error}; {unsaved}"
                )
                job.status = JobStatus.FAILED
            self._prune(job.tenant)

    # --- persistence --------------------------------------------------------------------------
    def _write(self, job: Job) -> None:
        """Write the job's record atomically (the folder is made again if it went)."""
        data = json.dumps(job.to_dict(), indent=1, sort_keys=True)
        try:
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".job-", suffix=".tmp")
        except FileNotFoundError:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".job-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self._dir / f"{job.id}.json")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _prune(self, tenant: str) -> None:
        """Forget the tenant's finished jobs beyond the newest `keep` (memory and disk)."""
        with self._changed:
            finished = [
                job
                for job in self._jobs.values()
                if job.tenant == tenant and job.status in _FINISHED
            ]
            finished.sort(key=lambda job: job.created_at)  # stable: ties stay in insertion order
            for job in finished[: max(0, len(finished) - self._keep)]:
                del self._jobs[job.id]
                try:
                    (self._dir / f"{job.id}.json").unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("cannot remove the record of ingest job %s: %s", job.id, exc)

    # --- persistence --------------------------------------------------------------------------
    def _load(self) -> None:
        loaded: list[Job] = []
        for path in self._dir.glob("job_*.json"):
            if not _JOB_ID.match(path.stem):
                continue
            try:
                loaded.append(Job.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable job record %s: %s", path, exc)
        for job in sorted(loaded, key=lambda job: (job.created_at, job.id)):
            self._jobs[job.id] = job
            if job.status not in _FINISHED:
                job.status = JobStatus.FAILED
                job.error = INTERRUPTED
                job.finished_at = job.finished_at or utc_now()
                try:
                    self._write(job)
                except OSError as exc:
                    log.warning("cannot mark ingest job %s interrupted: %s", job.id, exc)
        for tenant in {job.tenant for job in loaded}:
            self._prune(tenant)


def _created_now() -> str:
    """A job's creation time, to the microsecond: jobs sort by it."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _reason(exc: OSError) -> str:
    """What went wrong, without the path an OSError carries ("No space left on device")."""
    return exc.strerror or type(exc).__name__


def _internal(exc: BaseException) -> str:
    """A caller's message for an unexpected error: its kind only (the log has the rest)."""
    return f"the ingest stopped on an internal error ({type(exc).__name__}); see the server log"


def remove_job_records(jobs_dir: Path, tenant: str) -> int:
    """Delete the job record files of `tenant` under `jobs_dir`; how many were deleted."""
    check_tenant(tenant)
    removed = 0
    folder = Path(jobs_dir)
    if not folder.is_dir():
        return 0
    for path in folder.glob("job_*.json"):
        if not _JOB_ID.match(path.stem):
            continue
        try:
            owner = json.loads(path.read_text(encoding="utf-8")).get("tenant")
        except (OSError, ValueError, AttributeError):
            continue
        if owner == tenant:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
