"""`lorag eval answers` takes the tenant's key without showing it in `ps`: from standard input
(`--api-key -`) or from a file (`--api-key-file`); its help warns that `--api-key KEY` is
visible to other local users. Run against a small stand-in gateway that records the key."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request

from cli.main import main
from tests.service.fake_vllm import serve_in_thread

KEY = "lrg-0123456789abcdef0123456789abcdef"


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[str]]]:
    """A stand-in gateway answering chat completions; yields its URL and the keys it got."""
    seen: list[str] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, object]:
        seen.append(request.headers.get("authorization", ""))
        return {
            "choices": [{"message": {"role": "assistant", "content": "Paris."}}],
            "usage": {"completion_tokens": 2},
        }

    with serve_in_thread(app) as url:
        yield url, seen


@pytest.fixture
def qa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))  # no local registry
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "Capital of France?", "answer": "Paris"}) + "\n")
    return path


def _eval(qa: Path, url: str, out: Path, *key_args: str) -> int:
    command = ["eval", "answers", str(qa), "--tenant", "acme", "--modes", "base"]
    return main([*command, "--url", url, "--out", str(out), *key_args])


def test_the_key_can_come_from_standard_input(
    gateway: tuple[str, list[str]], qa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = gateway
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{KEY}\n"))
    assert _eval(qa, url, tmp_path / "out", "--api-key", "-") == 0
    assert seen == [f"Bearer {KEY}"]


def test_the_key_can_come_from_a_file(
    gateway: tuple[str, list[str]], qa: Path, tmp_path: Path
) -> None:
    url, seen = gateway
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n")
    assert _eval(qa, url, tmp_path / "out", "--api-key-file", str(key_file)) == 0
    assert seen == [f"Bearer {KEY}"]


def test_an_empty_key_is_refused(
    qa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert _eval(qa, "http://127.0.0.1:9", tmp_path / "out", "--api-key", "-") == 2
    assert "empty" in capsys.readouterr().err
    missing = tmp_path / "nothing-here"
    assert _eval(qa, "http://127.0.0.1:9", tmp_path / "out", "--api-key-file", str(missing)) == 2


def test_one_way_of_giving_the_key_is_required(
    qa: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _eval(qa, "http://127.0.0.1:9", tmp_path / "out")
    with pytest.raises(SystemExit):
        _eval(qa, "http://127.0.0.1:9", tmp_path / "out", "--api-key", KEY, "--api-key-file", "x")


def test_the_help_says_a_key_on_the_command_line_is_visible(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "answers", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--api-key-file" in help_text
    assert "visible to other local users" in help_text
