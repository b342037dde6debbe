"""Background ingest jobs: status and report, tenant scoping, sync scopes, persistence and
interruption across restarts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.errors import InvalidTenant, JobNotFound
from ingest.jobs import INTERRUPTED
from ingest.knowledge import KnowledgeBase
from ingest.models import JobStatus, SourceDocument


def test_a_job_runs_in_the_background_and_reports(kb: KnowledgeBase) -> None:
    docs = [
        SourceDocument("a", "Alpacas are kept for their soft wool."),
        SourceDocument("b", ""),  # empty: reported, the job still succeeds
    ]
    job = kb.jobs.submit("acme", docs)
    assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert job.id.startswith("job_") and job.documents == 2
    done = kb.jobs.wait("acme", job.id, timeout=120)
    assert done.status == JobStatus.SUCCEEDED
    assert done.report is not None and done.report.added == ["a"]
    assert [name for name, _ in done.report.failed] == ["b"]
    assert done.started_at and done.finished_at and done.error is None
    assert kb.search("acme", "wool")[0].doc_id == "a"
    assert [j.id for j in kb.jobs.list("acme")] == [job.id]

    with pytest.raises(JobNotFound) as raised:
        kb.jobs.get("other", job.id)
    assert raised.value.status == 404
    with pytest.raises(JobNotFound):
        kb.jobs.get("acme", "job_0123")
    with pytest.raises(InvalidTenant):
        kb.jobs.submit("Bad Tenant", docs)


def test_jobs_run_one_at_a_time_in_order_with_sync_scopes(kb: KnowledgeBase) -> None:
    first = [SourceDocument(f"up/{i}", f"Upload {i} about herons.") for i in range(3)]
    jobs = [
        kb.jobs.submit("acme", first, sync_scope="uploads"),
        kb.jobs.submit("acme", first[:1], sync_scope="uploads"),  # the whole set is now one doc
    ]
    reports = [kb.jobs.wait("acme", job.id, timeout=120).report for job in jobs]
    assert reports[0].added == ["up/0", "up/1", "up/2"]
    assert (reports[1].unchanged, sorted(reports[1].deleted)) == (["up/0"], ["up/1", "up/2"])
    finished = [kb.jobs.get("acme", job.id) for job in jobs]
    assert finished[0].finished_at <= finished[1].started_at
    assert [d.doc_id for d in kb.list_documents("acme")] == ["up/0"]


def test_job_records_survive_a_restart(open_kb, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = open_kb("edge", data_dir=data)
    job = kb.jobs.submit("acme", [SourceDocument("a", "Puffins nest on cliffs.")])
    kb.jobs.wait("acme", job.id, timeout=120)
    kb.close()

    # a job that was running when its process died
    jobs_dir = data / "knowledge" / "jobs"
    record = json.loads((jobs_dir / f"{job.id}.json").read_text())
    dead_id = "job_" + "d" * 32
    dead = {**record, "id": dead_id, "status": "running", "report": None, "finished_at": None}
    (jobs_dir / f"{dead_id}.json").write_text(json.dumps(dead))

    again = open_kb("edge", data_dir=data)
    assert again.jobs.get("acme", job.id).status == JobStatus.SUCCEEDED
    assert again.jobs.get("acme", job.id).report.added == ["a"]
    interrupted = again.jobs.get("acme", dead_id)
    assert (interrupted.status, interrupted.error) == (JobStatus.FAILED, INTERRUPTED)
    assert json.loads((jobs_dir / f"{dead_id}.json").read_text())["status"] == "failed"


def test_closing_interrupts_the_running_job_between_documents(open_kb, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = open_kb("edge", data_dir=data)
    docs = [SourceDocument(f"d{i}", f"Document {i} about lemurs. " * 40) for i in range(400)]
    running = kb.jobs.submit("acme", docs)
    queued = kb.jobs.submit("acme", docs[:2])
    deadline = time.monotonic() + 120
    while kb.jobs.get("acme", running.id).status == JobStatus.QUEUED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kb.close()

    again = open_kb("edge", data_dir=data)
    stopped = again.jobs.get("acme", running.id)
    assert (stopped.status, stopped.error) == (JobStatus.FAILED, INTERRUPTED)
    assert stopped.report is not None and stopped.report.interrupted
    written = len(stopped.report.added)
    assert written < len(docs)
    assert len(again.list_documents("acme")) == written  # whole documents only
    assert again.jobs.get("acme", queued.id).status == JobStatus.FAILED
