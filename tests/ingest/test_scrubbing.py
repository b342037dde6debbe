"""Personal data scrubbed at ingest (`scrub_pii`, `--scrub-pii`, `LORAG_INGEST_SCRUB_PII`):
the stored chunks, the BM25 index and search results hold placeholders, the job report counts
them per kind, and turning it on rewrites a document stored unscrubbed. Real parts: MiniLM,
qdrant-edge, the app in-process behind Starlette's test client."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cli import ingest as ingest_cli
from ingest import knowledge
from ingest.embedding import Embedder
from ingest.forward import forward_ingest
from ingest.knowledge import KnowledgeBase, open_knowledge_base
from ingest.models import IngestReport, JobStatus, SourceDocument
from lorag.settings import Settings
from service.app import build_app
from service.engine.remote import RemoteEngine
from tests.conftest import ADMIN_KEY, free_port
from tests.ingest.conftest import kb_settings

ADMIN = {"x-admin-key": ADMIN_KEY}
ORIGINALS = ("jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST")
NOTE = (
    "# Refunds\n\nFor a refund write to jane.doe@example.com or call +44 20 7946 0958. "
    "We refunded card 4111 1111 1111 1111 to IBAN GB82 WEST 1234 5698 7654 32.\n"
)
EACH_ONCE = {"card": 1, "email": 1, "iban": 1, "phone": 1}


def _assert_scrubbed(text: str) -> None:
    for original in ORIGINALS:
        assert original not in text
    for placeholder in ("<EMAIL>", "<PHONE>", "<CARD>", "<IBAN>"):
        assert placeholder in text


def test_a_scrubbing_job_stores_placeholders_and_counts_them(kb: KnowledgeBase) -> None:
    doc = SourceDocument(
        "refunds.md",
        NOTE,
        title="Refunds (owner ops@example.com)",
        metadata={"contact": {"email": "desk@example.com"}, "lang": "en"},
    )
    job = kb.jobs.submit("acme", [doc], scrub_pii=True)
    done = kb.jobs.wait("acme", job.id, timeout=120)
    assert done.status == JobStatus.SUCCEEDED and done.scrub_pii
    assert done.report is not None and done.report.scrubbed == {**EACH_ONCE, "email": 3}
    assert done.to_dict()["report"]["scrubbed"] == {**EACH_ONCE, "email": 3}

    hit = kb.search("acme", "how do I get a refund?")[0]
    _assert_scrubbed(hit.text)
    assert hit.title == "Refunds (owner <EMAIL>)"
    assert hit.metadata == {"contact": {"email": "<EMAIL>"}, "lang": "en"}
    assert kb.search("acme", "jane doe", mode="sparse") == []  # BM25 never saw the name


def test_scrubbing_off_keeps_the_text_and_on_rewrites_it(kb: KnowledgeBase) -> None:
    kept = kb.ingest_documents("acme", [SourceDocument("refunds.md", NOTE)])
    assert kept.scrubbed is None and kept.added == ["refunds.md"]
    assert "jane.doe@example.com" in kb.search("acme", "refund")[0].text
    assert kb.search("acme", "jane doe", mode="sparse")[0].doc_id == "refunds.md"

    # same content, now scrubbed: rewritten, not skipped as unchanged
    scrubbed = kb.ingest_documents("acme", [SourceDocument("refunds.md", NOTE)], scrub_pii=True)
    assert (scrubbed.updated, scrubbed.unchanged) == (["refunds.md"], [])
    assert scrubbed.scrubbed == EACH_ONCE
    _assert_scrubbed(kb.search("acme", "refund")[0].text)
    assert kb.search("acme", "jane doe", mode="sparse") == []

    again = kb.ingest_documents("acme", [SourceDocument("refunds.md", NOTE)], scrub_pii=True)
    assert (again.unchanged, again.scrubbed) == (["refunds.md"], {})  # nothing re-read


def test_the_setting_scrubs_every_ingest(open_kb: Callable[..., KnowledgeBase]) -> None:
    kb = open_kb("edge", ingest_scrub_pii=True)
    report = kb.ingest_documents("acme", [SourceDocument("refunds.md", NOTE)])  # not asked
    assert report.scrubbed == EACH_ONCE
    job = kb.jobs.submit("acme", [SourceDocument("b.md", "Mail ann@example.com.")])
    assert job.scrub_pii  # a job cannot turn the operator's policy off
    assert kb.jobs.wait("acme", job.id, timeout=120).report.scrubbed == {"email": 1}


def test_the_cli_flag_scrubs_and_prints_the_counts(
    monkeypatch: pytest.MonkeyPatch, embedder: Embedder, tmp_path: Path, capsys
) -> None:
    from adapters.from_settings import open_registry

    monkeypatch.setattr(knowledge, "Embedder", lambda *args, **kwargs: embedder)
    root = argparse.ArgumentParser(prog="lorag")
    ingest_cli.register(root.add_subparsers())
    settings = kb_settings(tmp_path / "data")
    open_registry(settings).create_tenant("acme")
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "refunds.md").write_text(NOTE)
    command = ["ingest", str(folder), "--tenant", "acme", "--no-progress"]
    args = root.parse_args(command)
    assert args.handler(args, settings) == 0
    assert "scrubbed" not in capsys.readouterr().out  # off: no line
    args = root.parse_args([*command, "--scrub-pii"])
    assert args.handler(args, settings) == 0
    out = capsys.readouterr().out
    assert "personal data scrubbed: 1 card, 1 email, 1 iban, 1 phone" in out
    with open_knowledge_base(settings, embedder=embedder) as kb:
        _assert_scrubbed(kb.search("acme", "refund")[0].text)


def test_a_report_that_scrubbed_nothing_says_so() -> None:
    out = io.StringIO()
    ingest_cli.print_report(IngestReport(added=["a"], chunks=1, seconds=0.1, scrubbed={}), out)
    assert "personal data scrubbed: none found" in out.getvalue()


@pytest.fixture
def server(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The app with the session's model; its tenant acme's key in `client.headers`."""
    monkeypatch.setattr(
        "service.app.open_knowledge", lambda s: open_knowledge_base(s, embedder=embedder)
    )
    settings = Settings(data_dir=tmp_path / "data", admin_key=ADMIN_KEY)
    app = build_app(settings, engine=RemoteEngine([f"http://127.0.0.1:{free_port()}"]))
    with TestClient(app) as client:
        created = client.post("/admin/tenants", json={"id": "acme"}, headers=ADMIN)
        client.headers["authorization"] = f"Bearer {created.json()['api_key']}"
        yield client


def _wait(client: TestClient, job_id: str) -> dict:
    kb = client.portal.call(client.app.state.lorag.knowledge)  # type: ignore[attr-defined]
    kb.jobs.wait("acme", job_id, timeout=120)
    answer = client.get(f"/v1/knowledge/jobs/{job_id}")
    assert answer.status_code == 200
    return answer.json()


def test_the_http_field_the_form_field_and_forwarding(server: TestClient, tmp_path: Path) -> None:
    body = {"documents": [{"doc_id": "refunds.md", "text": NOTE}], "scrub_pii": True}
    created = server.post("/v1/knowledge/documents", json=body)
    assert created.status_code == 202 and created.json()["scrub_pii"] is True
    job = _wait(server, created.json()["id"])
    assert (job["status"], job["report"]["scrubbed"]) == ("succeeded", EACH_ONCE)
    hits = server.post("/v1/knowledge/search", json={"query": "refund"}).json()["data"]
    _assert_scrubbed(hits[0]["text"])

    upload = {"file": ("mail.txt", b"Reach me at bob@example.org.", "text/plain")}
    sent = server.post("/v1/knowledge/documents", files=upload, data={"scrub_pii": "true"})
    assert sent.status_code == 202, sent.text
    assert _wait(server, sent.json()["id"])["report"]["scrubbed"] == {"email": 1}
    bad = server.post("/v1/knowledge/documents", files=upload, data={"scrub_pii": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "scrub_pii"
    plain = server.post("/v1/knowledge/documents", json={"documents": body["documents"]})
    assert plain.json()["scrub_pii"] is False
    assert _wait(server, plain.json()["id"])["report"]["scrubbed"] is None

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "card.md").write_text("Card on file: 4111 1111 1111 1111.\n")
    url = str(server.base_url)
    forwarded = forward_ingest(
        url, ADMIN_KEY, "acme", [folder], sync=False, scrub_pii=True, client=server
    )
    assert (forwarded.added, forwarded.scrubbed) == (["card.md"], {"card": 1})
