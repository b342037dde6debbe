"""A tenant's ingest queue is capped: past `LORAG_INGEST_QUEUED_JOBS_PER_TENANT` queued jobs
the HTTP ingest answers 429 in OpenAI's envelope (with `Retry-After`), other tenants are not
held back. The real app in-process (real qdrant-edge store, real MiniLM)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from ingest.models import JobStatus
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}


def test_a_full_ingest_queue_is_a_429(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, admin_key=ADMIN_KEY, ingest_queued_jobs_per_tenant=1)
    app = build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))
    with TestClient(app) as client:
        keys = {}
        for tenant in ("acme", "other"):
            created = client.post("/admin/tenants", json={"id": tenant}, headers=ADMIN)
            keys[tenant] = {"authorization": f"Bearer {created.json()['api_key']}"}
        kb = client.portal.call(app.state.lorag.knowledge)

        def ingest(tenant: str, n: int):
            body = {"documents": [{"doc_id": f"d{n}", "text": f"Note {n} about wrens."}]}
            return client.post("/v1/knowledge/documents", json=body, headers=keys[tenant])

        with kb._ingest_lock:  # the first job waits inside its ingest
            running = ingest("acme", 0).json()
            deadline = time.monotonic() + 60
            while kb.jobs.get("acme", running["id"]).status == JobStatus.QUEUED:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert ingest("acme", 1).status_code == 202  # queued: the cap is 1
            refused = ingest("acme", 2)
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "5"
            error = refused.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert error["code"] == "rate_limit_exceeded" and "queued" in error["message"]
            admin_body = {"documents": [{"doc_id": "x", "text": "Operators hit it too."}]}
            path = "/admin/knowledge/acme/documents"
            by_admin = client.post(path, json=admin_body, headers=ADMIN)
            assert by_admin.status_code == 429
            assert ingest("other", 3).status_code == 202  # another tenant's queue
        for job in kb.jobs.list("acme") + kb.jobs.list("other"):
            assert kb.jobs.wait(job.tenant, job.id, timeout=60).status == JobStatus.SUCCEEDED
        assert ingest("acme", 4).status_code == 202
