"""Security rules of the gateway, checked in-process (no vLLM): the admin key, what `/ready` and
`/metrics` show to whom, and that a deleted tenant's knowledge does not outlive it.

The app is built with a remote engine pointing at a port where nothing listens; admin, health
and knowledge routes never need it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cli.main import main
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets reaches `Settings`."""
    for name in ("LORAG_ADMIN_KEY", "LORAG_REQUIRE_API_KEY", "LORAG_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def make_app(tmp_path: Path, **fields: Any) -> FastAPI:
    settings = Settings(data_dir=tmp_path / "data", **fields)
    return build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))


def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request through the ASGI app (no lifespan: these routes need no engine)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://lorag") as client:
                return await client.request(method, path, **kwargs)
        finally:
            await app.state.lorag.upstream.close()

    return asyncio.run(send())


def assert_envelope(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- the admin key -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_admin_key_turns_the_admin_api_off(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAG_ADMIN_KEY", value)
    assert Settings().admin_key is None
    assert Settings(admin_key=value).admin_key is None
    app = make_app(tmp_path)
    for headers in ({}, {"x-admin-key": ""}, {"authorization": "Bearer "}):
        error = assert_envelope(call(app, "GET", "/admin/tenants", headers=headers), 403)
        assert "LORAG_ADMIN_KEY" in error["message"]


@pytest.mark.parametrize("value", ["s3cr3t", "fifteen-chars!!"])
def test_a_short_admin_key_is_refused_at_start(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAG_ADMIN_KEY", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "LORAG_ADMIN_KEY" in str(refused.value) and "16" in str(refused.value)
    assert main(["tenants", "list"]) == 2
    err = capsys.readouterr().err
    assert "LORAG_ADMIN_KEY" in err and "at least 16 characters" in err
    assert value not in err  # the secret itself is never printed


def test_the_test_admin_key_is_long_enough_and_works(tmp_path: Path) -> None:
    app = make_app(tmp_path, admin_key=ADMIN_KEY)
    assert call(app, "GET", "/admin/tenants", headers=ADMIN).json() == {"data": []}
    bearer = {"authorization": f"Bearer {ADMIN_KEY}"}
    assert call(app, "GET", "/admin/tenants", headers=bearer).status_code == 200
    assert_envelope(call(app, "GET", "/admin/tenants"), 401)


# --- /ready, /metrics, /health --------------------------------------------------------------
def test_ready_shows_internals_to_admins_only(tmp_path: Path) -> None:
    app = make_app(tmp_path, admin_key=ADMIN_KEY)
    public = call(app, "GET", "/ready")
    assert public.status_code == 503  # nothing listens at the engine's URL
    assert public.json() == {"ready": False}
    assert "127.0.0.1" not in public.text
    detail = call(app, "GET", "/ready", headers=ADMIN).json()
    assert detail["engine"]["kind"] == "remote" and detail["engine"]["urls"]
    assert "hardware" in detail


def test_metrics_need_the_admin_key_when_api_keys_are_required(tmp_path: Path) -> None:
    app = make_app(tmp_path, admin_key=ADMIN_KEY, require_api_key=True)
    assert_envelope(call(app, "GET", "/metrics"), 401)
    assert_envelope(call(app, "GET", "/metrics", headers={"x-admin-key": "x" * 20}), 401)
    bearer = {"authorization": f"Bearer {ADMIN_KEY}"}  # what Prometheus sends
    scraped = call(app, "GET", "/metrics", headers=bearer)
    assert scraped.status_code == 200 and "lorag_requests_total" in scraped.text
    assert call(app, "GET", "/health").json() == {"status": "ok"}
    assert call(app, "GET", "/ready").json() == {"ready": False}

    closed = make_app(tmp_path / "off", require_api_key=True)  # no admin key: no scraping
    assert_envelope(call(closed, "GET", "/metrics"), 403)

    open_app = make_app(tmp_path / "open", admin_key=ADMIN_KEY)  # keys not required: open
    assert call(open_app, "GET", "/metrics").status_code == 200


# --- deleting a tenant deletes its knowledge ------------------------------------------------
@pytest.fixture
def live(tmp_path: Path) -> Iterator[TestClient]:
    """The app with its lifespan (the knowledge base opens: real qdrant-edge, real MiniLM)."""
    app = make_app(tmp_path, admin_key=ADMIN_KEY)
    with TestClient(app) as client:
        yield client


def test_a_deleted_tenant_leaves_no_knowledge_to_its_successor(live: TestClient) -> None:
    from ingest.models import JobStatus, SourceDocument

    created = live.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN).json()
    kb = live.portal.call(live.app.state.lorag.knowledge)
    secret = SourceDocument("plans.md", "# Plans\n\nThe launch code word is tangerine.")
    kb.ingest_documents("acme", [secret])
    job = kb.jobs.submit("acme", [SourceDocument("more.md", "Tangerine is also the backup.")])
    assert kb.jobs.wait("acme", job.id, timeout=120).status == JobStatus.SUCCEEDED
    old = {"authorization": f"Bearer {created['api_key']}"}
    assert len(live.get("/v1/knowledge/documents", headers=old).json()["data"]) == 2
    kb.ingest_documents("other", [SourceDocument("keep.md", "Tangerine trees grow here.")])

    deleted = live.delete("/admin/tenants/acme", headers=ADMIN).json()
    assert deleted == {"deleted": "acme", "chunks_deleted": 2}
    assert_envelope(live.get("/v1/knowledge/documents", headers=old), 401)

    again = live.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN).json()
    new = {"authorization": f"Bearer {again['api_key']}"}
    assert live.get("/v1/knowledge/documents", headers=new).json()["data"] == []
    found = live.post("/v1/knowledge/search", json={"query": "launch code word"}, headers=new)
    assert found.status_code == 200 and found.json()["data"] == []
    assert kb.jobs.list("acme") == []
    assert_envelope(live.get(f"/v1/knowledge/jobs/{job.id}", headers=new), 404)
    assert [d.doc_id for d in kb.list_documents("other")] == ["keep.md"]  # others keep theirs


def test_deleting_a_tenant_with_a_queued_job_drops_the_job(live: TestClient) -> None:
    from ingest.models import SourceDocument

    live.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
    kb = live.portal.call(live.app.state.lorag.knowledge)
    docs = [SourceDocument(f"d{i}.md", f"Document number {i} about tangerines.") for i in range(40)]
    jobs = [kb.jobs.submit("acme", docs[i::4]) for i in range(4)]
    assert live.delete("/admin/tenants/acme", headers=ADMIN).status_code == 200
    time.sleep(0.5)  # a job the purge interrupted or dropped must not write afterwards
    assert kb.list_documents("acme") == []
    assert kb.jobs.list("acme") == []
    assert all(job.tenant == "acme" for job in jobs)


def test_interactive_docs_are_off_when_api_keys_are_required(tmp_path: Path) -> None:
    closed = make_app(tmp_path, admin_key=ADMIN_KEY, require_api_key=True)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert call(closed, "GET", path).status_code == 404
    assert call(make_app(tmp_path / "open"), "GET", "/openapi.json").status_code == 200


def test_child_processes_get_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from lorag.settings import SECRET_VARIABLES, child_environment

    monkeypatch.setenv("LORAG_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("LORAG_QDRANT_API_KEY", "qdrant-secret")
    monkeypatch.setenv("LORAG_VLLM_API_KEY", "vllm-secret")
    monkeypatch.setenv("LORAG_DATA_DIR", "/data")
    env = child_environment({"EXTRA": "1"})
    assert "LORAG_ADMIN_KEY" not in env and "LORAG_QDRANT_API_KEY" not in env
    assert "LORAG_VLLM_API_KEY" in SECRET_VARIABLES and "LORAG_VLLM_API_KEY" not in env
    assert "vllm-secret" not in env.values()  # vLLM gets its key as VLLM_API_KEY, from lorag
    assert env["LORAG_DATA_DIR"] == "/data" and env["EXTRA"] == "1" and "PATH" in env
