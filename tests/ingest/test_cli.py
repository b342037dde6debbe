"""The CLI commands: `lorag ingest` (summary table, exit codes, locked folder) and
`lorag eval retrieval` on the BEIR-layout fixture. The session's loaded model is reused."""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path

import pytest

from cli import evaluate as eval_cli
from cli import ingest as ingest_cli
from cli.main import main
from ingest import knowledge
from ingest.embedding import Embedder
from ingest.errors import StoreLocked, TenantNotFound
from ingest.models import ProgressEvent, SourceDocument
from ingest.progress import IngestProgressBar
from lorag.settings import Settings
from tests.ingest.conftest import kb_settings
from tests.ingest.sample_files import write_corpus

BEIR = Path(__file__).resolve().parents[1] / "fixtures" / "beir"


@pytest.fixture
def parser(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> argparse.ArgumentParser:
    monkeypatch.setattr(knowledge, "Embedder", lambda *args, **kwargs: embedder)
    root = argparse.ArgumentParser(prog="lorag")
    commands = root.add_subparsers()
    ingest_cli.register(commands)
    eval_cli.register(commands)
    return root


def run(parser: argparse.ArgumentParser, settings, *argv: str) -> int:
    args = parser.parse_args(argv)
    return args.handler(args, settings)


def with_tenant(settings: Settings, tenant: str = "acme") -> Settings:
    """`settings` whose registry holds `tenant` (ingest refuses unknown tenants)."""
    from adapters.from_settings import open_registry

    open_registry(settings).create_tenant(tenant)
    return settings


def test_ingest_prints_a_summary_and_exits_by_outcome(parser, tmp_path: Path, capsys) -> None:
    settings = with_tenant(kb_settings(tmp_path / "data"))
    folder = write_corpus(tmp_path / "corpus")
    assert run(parser, settings, "ingest", str(folder), "--tenant", "acme", "--no-progress") == 0
    out = capsys.readouterr().out
    assert re.search(r"^added\s+9$", out, re.M)
    assert re.search(r"chunks written in [\d.]+ s \([\d.]+ chunks/s\)", out)

    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    (folder / "tools.md").unlink()
    argv = ["ingest", str(folder), "--tenant", "acme", "--sync", "--doc-id-prefix", ""]
    assert run(parser, settings, *argv) == 1
    captured = capsys.readouterr()
    assert re.search(r"^unchanged\s+8$", captured.out, re.M)
    assert re.search(r"^deleted\s+1$", captured.out, re.M)
    assert "broken.pdf: corrupt PDF" in captured.out

    with pytest.raises(SystemExit):
        parser.parse_args(["ingest", str(folder), "--tenant", "Not Valid"])


def test_progress_bar_shows_documents_chunks_and_rate() -> None:
    out = io.StringIO()
    bar = IngestProgressBar(disable=False, file=out)
    bar(ProgressEvent(documents_done=1, documents_total=4, chunks_done=10, current="a.md"))
    bar(ProgressEvent(documents_done=4, documents_total=4, chunks_done=50, current=None))
    bar.close()
    text = out.getvalue()
    assert "4/4" in text and "chunks=50" in text and "chunks_s=" in text


def test_ingest_into_a_locked_folder_fails_fast_and_clearly(open_kb, parser, tmp_path: Path):
    settings = with_tenant(kb_settings(tmp_path / "data"))
    open_kb("edge", data_dir=tmp_path / "data")  # holds the folder
    started = time.perf_counter()
    with pytest.raises(StoreLocked) as raised:
        run(parser, settings, "ingest", str(tmp_path), "--tenant", "acme")
    assert time.perf_counter() - started < 10
    assert raised.value.status == 409
    assert "in use by another process" in raised.value.message


def test_ingest_refuses_an_unknown_tenant(parser, tmp_path: Path) -> None:
    settings = kb_settings(tmp_path / "data")
    with pytest.raises(TenantNotFound) as refused:
        run(parser, settings, "ingest", str(tmp_path), "--tenant", "ghost", "--no-progress")
    assert refused.value.status == 404 and refused.value.param == "tenant"
    assert "tenant 'ghost' not found" in refused.value.message
    assert "lorag tenants create ghost" in refused.value.message
    assert not settings.knowledge_dir.exists()  # nothing was opened or written


def test_deleting_a_tenant_on_the_command_line_purges_its_knowledge(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(knowledge, "Embedder", lambda *args, **kwargs: embedder)
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LORAG_ADMIN_KEY", raising=False)
    settings = kb_settings(tmp_path / "data")
    folder = write_corpus(tmp_path / "corpus")
    assert main(["tenants", "create", "acme"]) == 0
    assert main(["ingest", str(folder), "--tenant", "acme", "--no-progress"]) == 0
    with knowledge.open_knowledge_base(settings, embedder=embedder) as kb:
        job = kb.jobs.submit("acme", [SourceDocument("note.md", "A note about the VPN.")])
        kb.jobs.wait("acme", job.id, timeout=60)
        assert len(kb.list_documents("acme")) == 10
    capsys.readouterr()

    assert main(["tenants", "delete", "acme"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "deleted tenant acme"
    assert main(["tenants", "create", "acme"]) == 0
    with knowledge.open_knowledge_base(settings, embedder=embedder) as kb:
        assert kb.list_documents("acme") == []
        assert kb.search("acme", "how do I reset the VPN?") == []
        assert kb.jobs.list("acme") == []


def test_eval_retrieval_prints_sane_numbers(parser, capsys) -> None:
    settings = kb_settings(Path("unused"))
    assert run(parser, settings, "eval", "retrieval", str(BEIR), "--k", "3") == 0
    out = capsys.readouterr().out
    assert "40 documents" in out and "20 queries" in out
    scores = {
        mode: tuple(float(x) for x in numbers.split())
        for mode, numbers in re.findall(r"^(hybrid|dense|sparse)\s+([\d. ]+)$", out, re.M)
    }
    assert set(scores) == {"hybrid", "dense", "sparse"}
    for mode, (recall, mrr, ndcg) in scores.items():
        assert 0.7 <= recall <= 1.0, mode
        assert 0.6 <= mrr <= 1.0, mode
        assert 0.6 <= ndcg <= 1.0, mode
    assert scores["sparse"] != scores["dense"]  # the modes really differ
