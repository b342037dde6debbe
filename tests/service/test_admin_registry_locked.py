"""Admin writes while another process holds the registry's write lock: each answers 503 in
OpenAI's envelope after `LORAG_REGISTRY_BUSY_TIMEOUT_S`, names no folder, and the event loop
stays free meanwhile (`/health` answers at once). The app in-process; the lock is a real
`BEGIN IMMEDIATE` on a second SQLite connection."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}
BUSY_S = 1.0


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, admin_key=ADMIN_KEY, registry_busy_timeout_s=BUSY_S)
    return build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))


@pytest.fixture
def lock(app: FastAPI) -> Iterator[sqlite3.Connection]:
    """Another process's writer, as SQLite sees it: a second connection in BEGIN IMMEDIATE."""
    path = app.state.lorag.settings.registry_path
    holder = sqlite3.connect(path, isolation_level=None)
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/admin/tenants", {"id": "globex"}),
    ("PUT", "/admin/tenants/acme/modes/plain", {"target": "base"}),
    ("POST", "/admin/tenants/acme/rotate-key", None),
    ("DELETE", "/admin/tenants/acme/modes/rag", None),
    ("DELETE", "/admin/tenants/acme", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_a_write_on_a_locked_registry_is_a_503_and_the_loop_stays_free(
    app: FastAPI,
    lock: sqlite3.Connection,
    tmp_path: Path,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    async def scenario() -> tuple[httpx.Response, float, float, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://lorag") as client:
                await client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
                mode = {"target": "base", "retrieval": {"top_k": 2}}
                await client.put("/admin/tenants/acme/modes/rag", json=mode, headers=ADMIN)
                lock.execute("BEGIN IMMEDIATE")
                started = time.monotonic()
                write = asyncio.create_task(client.request(method, path, json=body, headers=ADMIN))
                probe = time.monotonic()
                await asyncio.sleep(0.2)  # the write is waiting for the lock by now
                health = await client.get("/health")
                health_s = time.monotonic() - probe - 0.2  # a blocked loop delays both
                assert health.status_code == 200
                assert not write.done()  # /health answered while the write still waited
                answer = await write
                write_s = time.monotonic() - started
                lock.execute("ROLLBACK")
                after = await client.get("/admin/tenants/acme", headers=ADMIN)
                return answer, health_s, write_s, after
        finally:
            await app.state.lorag.upstream.close()

    answer, health_s, write_s, after = asyncio.run(scenario())
    assert health_s < 0.5, f"/health waited {health_s:.2f} s: the event loop was blocked"
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("service_unavailable", "registry_busy")
    assert str(tmp_path) not in error["message"] and "sqlite3" not in error["message"]
    assert BUSY_S <= write_s < BUSY_S + 5
    assert after.status_code == 200  # nothing changed, the registry works again
    assert [m["name"] for m in after.json()["modes"]] == ["rag"]
