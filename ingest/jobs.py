"""`JobRunner`: background ingest jobs, one at a time per knowledge base, persisted as JSON.

`submit` queues documents and returns at once with a `Job` (status queued); one worker
thread runs the jobs in order (running -> succeeded/failed, with the ingest report). Each
job is a JSON file under the jobs folder, written atomically at every change, so a restart
still shows it; a job found queued or running at start died with its process and is
marked failed ("interrupted"). A tenant sees only its own jobs: another tenant's job id is
`JobNotFound`, the same as an unknown one. `purge(tenant)` forgets a deleted tenant's jobs:
their records go, queued ones never run and a running one stops before its next document.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.errors import IngestError, InvalidInput, JobNotFound
from ingest.models import Job, JobStatus, SourceDocument, check_tenant
from ingest.pipeline import utc_now

if TYPE_CHECKING:
    from ingest.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

KEEP_JOBS = 1000
"""Job records kept on disk; the oldest finished ones beyond this are removed at start."""
INTERRUPTED = "interrupted: the process stopped before the job finished"
_JOB_ID = re.compile(r"^job_[0-9a-f]{32}$")
_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobRunner:
    """Runs submitted ingest jobs of a knowledge base in a background thread."""

    def __init__(self, kb: KnowledgeBase, jobs_dir: Path, *, keep: int = KEEP_JOBS) -> None:
        self._kb = kb
        self._dir = Path(jobs_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._changed = threading.Condition()
        self._queue: queue.Queue[tuple[str, list[SourceDocument]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._running: tuple[str, threading.Event] | None = None  # (tenant, its cancel event)
        self._load(keep)
        self._thread = threading.Thread(target=self._work, name="lorag-ingest-jobs", daemon=True)
        self._thread.start()

    # --- public -------------------------------------------------------------------------------
    def submit(
        self, tenant: str, docs: Sequence[SourceDocument], sync_scope: str | None = None
    ) -> Job:
        """Queue an ingest of `docs` for `tenant`; returns the queued job."""
        check_tenant(tenant)
        if self._stop.is_set():
            raise InvalidInput("the job runner is closed")
        docs = list(docs)
        for doc in docs:
            if not isinstance(doc, SourceDocument):
                raise InvalidInput("documents must be SourceDocument objects", param="documents")
        job = Job(
            id=f"job_{uuid.uuid4().hex}",
            tenant=tenant,
            status=JobStatus.QUEUED,
            documents=len(docs),
            created_at=utc_now(),
            sync_scope=sync_scope,
        )
        self._save(job)
        self._queue.put((job.id, docs))
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
            job_id, docs = item
            self._run(job_id, docs)

    def _run(self, job_id: str, docs: list[SourceDocument]) -> None:
        cancel = threading.Event()
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:  # purged with its tenant while queued
                return
            job.status = JobStatus.RUNNING
            job.started_at = utc_now()
            self._save(job)
            self._running = (job.tenant, cancel)
            if self._stop.is_set():
                cancel.set()
        try:
            report = self._kb.ingest_documents(
                job.tenant, docs, sync_scope=job.sync_scope, cancel=cancel
            )
        except IngestError as exc:
            self._finish(job_id, JobStatus.FAILED, error=exc.message)
        except Exception as exc:
            log.exception("ingest job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            if report.interrupted:
                self._finish(job_id, JobStatus.FAILED, report=report, error=INTERRUPTED)
            else:
                self._finish(job_id, JobStatus.SUCCEEDED, report=report)
        finally:
            with self._changed:
                self._running = None

    def _finish(self, job_id: str, status: JobStatus, **fields: object) -> None:
        with self._changed:
            job = self._jobs.get(job_id)
            if job is None:  # purged with its tenant: nothing to record
                return
            job.status = status
            job.finished_at = utc_now()
            for name, value in fields.items():
                setattr(job, name, value)
            self._save(job)

    # --- persistence --------------------------------------------------------------------------
    def _save(self, job: Job) -> None:
        with self._changed:
            self._jobs[job.id] = job
            data = json.dumps(job.to_dict(), indent=1, sort_keys=True)
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".job-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(data)
                os.replace(tmp, self._dir / f"{job.id}.json")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._changed.notify_all()

    def _load(self, keep: int) -> None:
        for path in sorted(self._dir.glob("job_*.json")):
            if not _JOB_ID.match(path.stem):
                continue
            try:
                job = Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable job record %s: %s", path, exc)
                continue
            self._jobs[job.id] = job
            if job.status not in _FINISHED:
                job.status = JobStatus.FAILED
                job.error = INTERRUPTED
                job.finished_at = job.finished_at or utc_now()
                self._save(job)
        finished = sorted(
            (job for job in self._jobs.values() if job.status in _FINISHED),
            key=lambda job: job.created_at,
        )
        for job in finished[: max(0, len(self._jobs) - keep)]:
            (self._dir / f"{job.id}.json").unlink(missing_ok=True)
            del self._jobs[job.id]


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
