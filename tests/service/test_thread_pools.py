"""Each request's registry reads run off the event loop (a PostgreSQL registry is a network
round trip away). A burst of slow knowledge writes does not hold up retrieval: deletes and
uploads run on the knowledge pool, searches (the search endpoint and the RAG retrieval step) on
a pool of their own (`service.executors`), not all on asyncio's one default pool. The app
in-process with its lifespan, no vLLM; the knowledge base is a double whose deletes and uploads
wait on a gate."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ingest.models import Job, JobStatus
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from service.executors import THREAD_PREFIX, Executors
from service.protocol.retrieval import RetrievalSettings
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}
WRITES = 32
"""Slow writes at once: more than any default pool has threads (min(32, CPUs + 4))."""
BOUND_S = 2.0
"""A search must answer within this while every write waits (it takes milliseconds)."""
HELD_S = 60.0


class SlowKnowledge:
    """A knowledge base whose writes wait until `gate` opens; searches answer at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.jobs = self

    def delete_document(self, tenant: str, doc_id: str) -> bool:
        self.gate.wait(HELD_S)
        return True

    def submit(self, tenant: str, docs: list[Any], *args: Any, **options: Any) -> Job:
        return Job(f"job_{uuid.uuid4().hex}", tenant, JobStatus.QUEUED, len(docs), "now")

    def search(self, tenant: str, query: str, **options: Any) -> list[Any]:
        return []

    def close(self) -> None:
        self.gate.set()


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> SlowKnowledge:
    knowledge = SlowKnowledge()
    monkeypatch.setattr("service.app.open_knowledge", lambda settings: knowledge)
    import service.routes.knowledge as routes

    real_save = routes.save_upload

    def slow_save(*args: Any) -> Any:  # an upload stuck copying its file (a slow disk)
        knowledge.gate.wait(HELD_S)
        return real_save(*args)

    monkeypatch.setattr(routes, "save_upload", slow_save)
    return knowledge


@contextlib.asynccontextmanager
async def tenant_client(
    app: FastAPI,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The app with its lifespan, a client of it, and tenant acme's bearer header."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://lorag") as client,
    ):
        created = await client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
        yield client, {"authorization": f"Bearer {created.json()['api_key']}"}


def _delete(client: httpx.AsyncClient, key: dict[str, str], i: int) -> Any:
    return client.delete(f"/v1/knowledge/documents/d{i}", headers=key)


def _upload(client: httpx.AsyncClient, key: dict[str, str], i: int) -> Any:
    files = {"file": (f"note{i}.txt", b"Wrens sing loudly for their size.", "text/plain")}
    return client.post("/v1/knowledge/documents", files=files, headers=key)


@pytest.mark.parametrize("write", [_delete, _upload], ids=["deletes", "uploads"])
def test_slow_writes_do_not_hold_up_retrieval(
    slow: SlowKnowledge, tmp_path: Path, write: Callable[..., Any]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)
    app = build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))
    before = set(threading.enumerate())

    def pool_threads() -> set[threading.Thread]:
        alive = set(threading.enumerate()) - before
        return {thread for thread in alive if thread.name.startswith(THREAD_PREFIX)}

    async def scenario(app: FastAPI) -> tuple[float, float]:
        async with tenant_client(app) as (client, key):
            writes = [asyncio.create_task(write(client, key, i)) for i in range(WRITES)]
            try:
                await asyncio.sleep(0.5)  # every write is in a worker thread, waiting
                assert not any(task.done() for task in writes)
                started = time.monotonic()
                body = {"query": "wrens", "top_k": 1}
                search = client.post("/v1/knowledge/search", json=body, headers=key)
                try:
                    answer = await asyncio.wait_for(search, BOUND_S)
                except TimeoutError:
                    pytest.fail(f"the search waited behind {WRITES} slow writes")
                searched_s = time.monotonic() - started
                assert answer.status_code == 200, answer.text
                started = time.monotonic()
                retriever = app.state.lorag.completions.retriever
                step = retriever.search("acme", "wrens", RetrievalSettings())
                try:
                    await asyncio.wait_for(step, BOUND_S)
                except TimeoutError:
                    pytest.fail(f"the RAG retrieval step waited behind {WRITES} slow writes")
                retrieved_s = time.monotonic() - started
                names = {thread.name for thread in pool_threads()}
                assert any("knowledge" in name for name in names)
                assert any("retrieval" in name for name in names)
            finally:
                slow.gate.set()
                done = await asyncio.gather(*writes)
            assert all(reply.status_code in (200, 202) for reply in done)
        return searched_s, retrieved_s

    searched_s, retrieved_s = asyncio.run(scenario(app))
    assert searched_s < BOUND_S and retrieved_s < BOUND_S
    assert not pool_threads()  # the lifespan shut the pools down


def test_a_pool_call_runs_in_its_pool_with_the_callers_context() -> None:
    """Log lines of a pool call carry the request's id, as with `asyncio.to_thread`."""
    from service.request_ids import current_request_id

    executors = Executors({"lookup": 1, "retrieval": 1, "knowledge": 1, "registry": 1})

    def where() -> tuple[str, str]:
        return threading.current_thread().name, current_request_id.get()

    async def call() -> tuple[str, str]:
        current_request_id.set("req-42")
        return await executors.run("knowledge", where)

    try:
        thread, request_id = asyncio.run(call())
    finally:
        executors.shutdown()
    assert thread.startswith(f"{THREAD_PREFIX}-knowledge") and request_id == "req-42"
    with pytest.raises(ValueError):
        Executors({"lookup": 1, "retrieval": 1, "knowledge": 0, "registry": 1})


def test_each_requests_registry_reads_run_off_the_event_loop(tmp_path: Path) -> None:
    """A registry as slow as a busy PostgreSQL (each read 0.3 s): 8 requests at once read it on
    the lookup pool's threads, and the gateway answers `/health` meanwhile."""
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY, lookup_threads=8)
    app = build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))
    registry = app.state.lorag.registry
    readers: list[str] = []

    def slowed(read: Callable[..., Any]) -> Callable[..., Any]:
        def slow_read(*args: Any) -> Any:
            readers.append(threading.current_thread().name)
            time.sleep(0.3)
            return read(*args)

        return slow_read

    async def scenario(app: FastAPI) -> tuple[list[int], float]:
        async with tenant_client(app) as (client, key):
            for name in ("tenant_for_key", "default_mode", "get_mode", "list_modes"):
                setattr(registry, name, slowed(getattr(registry, name)))
            body = {"model": "support", "messages": [{"role": "user", "content": "Hi"}]}
            chats = [
                asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=key))
                for _ in range(8)
            ]
            models = asyncio.create_task(client.get("/v1/models", headers=key))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            assert (await client.get("/health")).status_code == 200
            health_s = time.monotonic() - started
            answers = await asyncio.gather(*chats, models)
            return [answer.status_code for answer in answers], health_s

    statuses, health_s = asyncio.run(scenario(app))
    assert statuses == [404] * 8 + [200]  # no mode `support`; the model list
    # each chat read its key's tenant and its mode, the list its key and the modes
    assert len(readers) == 8 * 2 + 2
    assert all(name.startswith(f"{THREAD_PREFIX}-lookup") for name in readers), readers
    assert health_s < 0.5  # on the loop: 18 reads x 0.3 s = 5.4 s before it could answer
