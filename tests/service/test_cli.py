"""The `lorag` command line: help, model preparation, settings errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from lorag.base_model import is_prepared
from tests.conftest import REPO


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    listed = re.findall(r"^ {4}([a-z]+) ", done.stdout, re.MULTILINE)
    assert listed == ["serve", "models", "eval", "adapters", "tenants", "ingest", "data", "train"]
    serve = run_cli("serve", "--help")
    assert "--port" in serve.stdout and "/ready" in serve.stdout


def test_models_prepare_is_idempotent(
    base_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAG_DATA_DIR", str(REPO / ".lorag"))
    before = (base_model_dir / "model.safetensors").stat().st_mtime
    assert main(["models", "prepare"]) == 0
    assert capsys.readouterr().out.strip() == str(base_model_dir)
    assert is_prepared(base_model_dir)
    assert (base_model_dir / "model.safetensors").stat().st_mtime == before


def test_bad_settings_are_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LORAG_ENGINE", "remote")
    monkeypatch.delenv("LORAG_VLLM_URLS", raising=False)
    assert main(["models", "prepare"]) == 2
    assert "LORAG_ENGINE=remote needs LORAG_VLLM_URLS" in capsys.readouterr().err
    monkeypatch.setenv("LORAG_ENGINE", "warp-drive")
    assert main(["models", "prepare"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "warp-drive" in err
