"""`lorag ingest` forwarded to a running server keeps each file's scope, so a later `--sync`
(forwarded too) deletes the documents of files deleted on disk. The server is the real app
in-process (real qdrant-edge store, real MiniLM) behind Starlette's test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.forward import forward_ingest
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from tests.conftest import ADMIN_KEY, free_port

ADMIN = {"x-admin-key": ADMIN_KEY}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)
    app = build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))
    with TestClient(app) as client:
        assert client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN).is_success
        yield client


def _documents(server: TestClient) -> list[str]:
    kb = server.portal.call(server.app.state.lorag.knowledge)  # type: ignore[attr-defined]
    return [doc.doc_id for doc in kb.list_documents("acme")]


def test_a_forwarded_sync_deletes_what_was_deleted_on_disk(
    server: TestClient, tmp_path: Path
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpacas\n\nAlpacas hum when they are content.\n")
    (folder / "b.md").write_text("# Beavers\n\nBeavers build dams from branches.\n")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "c.md").write_text("# Cranes\n\nCranes dance in spring.\n")

    def forward(paths: list[Path], sync: bool):
        url = str(server.base_url)
        return forward_ingest(url, ADMIN_KEY, "acme", paths, sync=sync, client=server)

    first = forward([folder], sync=False)  # no --sync: each file's scope is recorded anyway
    assert sorted(first.added) == ["a.md", "b.md"]
    assert forward([loose / "c.md"], sync=False).added == ["c.md"]  # a file: its folder's scope
    assert _documents(server) == ["a.md", "b.md", "c.md"]

    (folder / "b.md").unlink()
    synced = forward([folder], sync=True)
    assert (synced.unchanged, synced.deleted) == (["a.md"], ["b.md"])
    assert _documents(server) == ["a.md", "c.md"]

    (loose / "c.md").unlink()
    (loose / "d.md").write_text("# Ducks\n\nDucks dabble.\n")
    assert forward([loose], sync=True).deleted == ["c.md"]
    assert _documents(server) == ["a.md", "d.md"]
