"""The `lorag` command line: help, model preparation, settings errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.base_model import is_prepared
from service.cli import main
from tests.conftest import REPO


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_help_lists_every_command() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for command in ("serve", "models", "adapters", "tenants", "ingest", "eval", "train"):
        assert command in done.stdout
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


def test_bad_settings_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAG_ENGINE", "remote")
    monkeypatch.delenv("LORAG_VLLM_URLS", raising=False)
    assert main(["models", "prepare"]) == 2
    monkeypatch.setenv("LORAG_ENGINE", "warp-drive")
    assert main(["models", "prepare"]) == 2
