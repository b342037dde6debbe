"""Ingest jobs under faults and load: the worker outlives any error in a job (a full disk, a
jobs folder gone), each tenant's queue is capped, and finished job records are kept to the
newest few per tenant."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.errors import JobNotFound, StoreUnavailable, TooManyJobs
from ingest.knowledge import KnowledgeBase
from ingest.models import JobStatus, SourceDocument
from tests.ingest.disk_faults import fill, tmpfs

WAIT_S = 120


def _until_running(kb: KnowledgeBase, tenant: str, job_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while kb.jobs.get(tenant, job_id).status == JobStatus.QUEUED:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


class _DiskFull:
    """The jobs folder is a 1 MiB tmpfs, filled up while the fault lasts."""

    name = "No space left on device"

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = jobs_dir
        self.filler: Path | None = None

    def prepare(self, stack: contextlib.ExitStack) -> None:
        stack.enter_context(tmpfs(self.jobs_dir, "1m"))

    def start(self) -> None:
        self.filler = fill(self.jobs_dir)

    def stop(self) -> None:
        assert self.filler is not None
        self.filler.unlink()


class _FolderGone:
    """The jobs folder is replaced by a file while the fault lasts (writes: ENOTDIR)."""

    name = "Not a directory"

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = jobs_dir
        self.away = jobs_dir.with_name("jobs-away")

    def prepare(self, stack: contextlib.ExitStack) -> None:
        pass

    def start(self) -> None:
        self.jobs_dir.rename(self.away)
        self.jobs_dir.write_text("not a folder")

    def stop(self) -> None:
        self.jobs_dir.unlink()
        self.away.rename(self.jobs_dir)


@pytest.mark.parametrize("fault_kind", [_DiskFull, _FolderGone], ids=["disk-full", "folder-gone"])
def test_the_worker_survives_jobs_whose_records_cannot_be_written(
    fault_kind: type, open_kb: Callable[..., KnowledgeBase], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    fault = fault_kind(data / "knowledge" / "jobs")
    with contextlib.ExitStack() as stack:
        fault.prepare(stack)
        kb = open_kb("edge", data_dir=data)
        stack.callback(kb.close)  # before the tmpfs goes
        kb.ingest_documents("acme", [SourceDocument("kept", "Otters hold hands asleep.")])
        with kb._ingest_lock:  # the first job waits inside its ingest
            first = kb.jobs.submit("acme", [SourceDocument("first", "Herons fish at dawn.")])
            _until_running(kb, "acme", first.id)
            second = kb.jobs.submit("acme", [SourceDocument("second", "Moles dig tunnels.")])
            fault.start()
        ended = [kb.jobs.wait("acme", job.id, timeout=WAIT_S) for job in (first, second)]
        for job in ended:
            assert job.status == JobStatus.FAILED, job
            assert job.error is not None and fault.name in job.error
            assert str(tmp_path) not in job.error and "/" not in job.error
        assert "ingested" in (ended[0].error or "")  # its documents are in, its record is not
        with pytest.raises(StoreUnavailable) as refused:  # nothing can be queued meanwhile
            kb.jobs.submit("acme", [SourceDocument("third", "Newts live in ponds.")])
        assert refused.value.status == 503 and str(tmp_path) not in refused.value.message

        fault.stop()
        third = kb.jobs.submit("acme", [SourceDocument("third", "Newts live in ponds.")])
        done = kb.jobs.wait("acme", third.id, timeout=WAIT_S)
        assert done.status == JobStatus.SUCCEEDED, done
        assert done.report is not None and done.report.added == ["third"]
        documents = [doc.doc_id for doc in kb.list_documents("acme")]
        assert documents == ["first", "kept", "third"]  # nothing indexed was lost
        assert kb.search("acme", "otters asleep", top_k=1)[0].doc_id == "kept"


def test_a_job_that_raises_anything_fails_and_the_next_one_runs(
    open_kb: Callable[..., KnowledgeBase], tmp_path: Path
) -> None:
    """Even a BaseException from native code (pyo3's PanicException is one) ends only the job."""
    kb = open_kb("edge")

    class Panic(BaseException):
        pass

    def broken(*args: object, **kwargs: object) -> None:
        raise Panic(f"called `Result::unwrap()` on an `Err` at {tmp_path}/segment")

    with kb._ingest_lock:
        original, kb._ingestor.run = kb._ingestor.run, broken
        first = kb.jobs.submit("acme", [SourceDocument("a", "Bats sleep upside down.")])
    failed = kb.jobs.wait("acme", first.id, timeout=WAIT_S)
    assert failed.status == JobStatus.FAILED
    assert failed.error is not None and "Panic" in failed.error and "/" not in failed.error
    kb._ingestor.run = original
    second = kb.jobs.submit("acme", [SourceDocument("b", "Owls hunt at night.")])
    assert kb.jobs.wait("acme", second.id, timeout=WAIT_S).status == JobStatus.SUCCEEDED


def test_queued_jobs_are_capped_per_tenant(open_kb: Callable[..., KnowledgeBase]) -> None:
    kb = open_kb("edge", ingest_queued_jobs_per_tenant=2)
    doc = [SourceDocument("a", "Cranes dance in spring.")]
    with kb._ingest_lock:
        running = kb.jobs.submit("acme", doc)
        _until_running(kb, "acme", running.id)  # a running job does not count
        queued = [kb.jobs.submit("acme", doc), kb.jobs.submit("acme", doc)]
        with pytest.raises(TooManyJobs) as raised:
            kb.jobs.submit("acme", doc)
        assert raised.value.status == 429 and "2" in raised.value.message
        other = kb.jobs.submit("other", doc)  # another tenant is not held back
        assert len(kb.jobs.list("acme")) == 3  # the refused job left no record
    for tenant, job in [("acme", running), *(("acme", j) for j in queued), ("other", other)]:
        assert kb.jobs.wait(tenant, job.id, timeout=WAIT_S).status == JobStatus.SUCCEEDED
    again = kb.jobs.submit("acme", doc)  # room again once the queue drained
    assert kb.jobs.wait("acme", again.id, timeout=WAIT_S).status == JobStatus.SUCCEEDED


def test_finished_job_records_keep_the_newest_per_tenant(
    open_kb: Callable[..., KnowledgeBase], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    jobs_dir = data / "knowledge" / "jobs"
    kb = open_kb("edge", data_dir=data, ingest_jobs_kept_per_tenant=3)
    ids = []
    for i in range(5):
        job = kb.jobs.submit("acme", [SourceDocument(f"d{i}", f"Note {i} about geese.")])
        assert kb.jobs.wait("acme", job.id, timeout=WAIT_S).status == JobStatus.SUCCEEDED
        ids.append(job.id)
    other = kb.jobs.submit("other", [SourceDocument("x", "Swans mate for life.")])
    kb.jobs.wait("other", other.id, timeout=WAIT_S)

    newest = ids[:-4:-1]
    assert [job.id for job in kb.jobs.list("acme")] == newest
    with pytest.raises(JobNotFound):
        kb.jobs.get("acme", ids[0])
    assert sorted(p.stem for p in jobs_dir.glob("job_*.json")) == sorted([*newest, other.id])
    assert len(kb.list_documents("acme")) == 5  # the records go, never the documents
    kb.close()

    again = open_kb("edge", data_dir=data, ingest_jobs_kept_per_tenant=2)
    assert [job.id for job in again.jobs.list("acme")] == newest[:2]
    assert [job.id for job in again.jobs.list("other")] == [other.id]
    assert sorted(p.stem for p in jobs_dir.glob("job_*.json")) == sorted([*newest[:2], other.id])
    shutil.rmtree(jobs_dir)  # a jobs folder removed by hand is made again on the next submit
    job = again.jobs.submit("acme", [SourceDocument("d9", "Note nine about geese.")])
    assert again.jobs.wait("acme", job.id, timeout=WAIT_S).status == JobStatus.SUCCEEDED
