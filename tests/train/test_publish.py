"""Publishing runs into a real SQLite registry: next version, promotion, the gate's veto."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.train.background import TrainedRun
from train.errors import GateFailed
from train.publish import publish_run


def test_gate_failure_blocks_publication(narrow_run: TrainedRun, registry, base_info) -> None:
    assert not narrow_run.gate.passed
    with pytest.raises(GateFailed) as caught:
        publish_run(narrow_run.run_dir, registry=registry, base=base_info, max_rank=16, name="acme")
    assert caught.value.status == 409 and "--force" in caught.value.message
    assert registry.list_adapters() == []

    forced = publish_run(
        narrow_run.run_dir, registry=registry, base=base_info, max_rank=16, name="acme", force=True
    )
    assert forced.forced and forced.version.version == 1
    assert forced.version.metrics["gate_passed"] is False
    assert forced.version.metrics["gate_forced"] is True
    assert forced.version.gate_status == "failed"


def test_publish_creates_the_next_version_and_promotes(
    mixed_run: TrainedRun, registry, base_info
) -> None:
    registry.create_tenant("shop")
    first = publish_run(
        mixed_run.run_dir, registry=registry, base=base_info, max_rank=16, name="acme"
    )
    assert first.version.version == 1 and first.mode is None
    second = publish_run(
        mixed_run.run_dir,
        registry=registry,
        base=base_info,
        max_rank=16,
        name="acme",
        promote="shop:support",
    )
    version = second.version
    assert version.version == 2 and version.served_name == "acme@v2"
    assert version.origin == f"train:{mixed_run.run_dir.name}"
    assert version.rank == 16 and version.base_model == "smollm2-135m-instruct"
    assert version.metrics["gate_passed"] is True
    assert version.metrics["run_card"]["data"]["general_mixed"] == 17
    assert version.metrics["test_loss_adapter"] < version.metrics["test_loss_base"]
    assert "gate passed" in version.notes
    assert version.gate is not None and version.gate["passed"] and version.gate["judged"]
    assert version.gate["by"] == f"train:{mixed_run.run_dir.name}"
    assert version.gate["summary"]["test_examples"] == 6
    mode = registry.get_mode("shop", "support")
    assert mode.target == "acme@v2" and mode.is_default
    stored = registry.artifact_path(version)
    assert (stored / "adapter_model.safetensors").is_file()


def _copy_run(run_dir: Path, into: Path) -> Path:
    copy = into / run_dir.name
    shutil.copytree(run_dir, copy)
    return copy


def _cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_model_dir: Path):
    """The Settings a `lorag` command run in this test sees (its data folder under tmp_path)."""
    from lorag.settings import Settings

    settings = Settings(data_dir=tmp_path / "lorag", base_model=str(base_model_dir))
    monkeypatch.setenv("LORAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    return settings


def test_cli_resume_of_a_finished_run_publishes_and_promotes(
    mixed_run: TrainedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_model_dir: Path,
) -> None:
    from adapters.from_settings import open_registry
    from cli.main import main

    settings = _cli_settings(tmp_path, monkeypatch, base_model_dir)
    open_registry(settings).create_tenant("shop")
    monkeypatch.setenv("LORAG_MODEL_NAME", "smollm2-135m-instruct")
    run = _copy_run(mixed_run.run_dir, tmp_path)
    gate_before = (run / "gate.json").read_text()
    code = main(
        ["train", "--resume", str(run), "--name", "acme", "--promote", "shop:support", "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "published acme@v1" in out and "promoted: shop:support -> acme@v1" in out
    assert (run / "gate.json").read_text() == gate_before  # same adapter: the gate was reused
    assert open_registry(settings).get_mode("shop", "support").target == "acme@v1"


def test_cli_refuses_to_publish_a_failed_gate(
    narrow_run: TrainedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_model_dir: Path,
) -> None:
    from adapters.from_settings import open_registry
    from cli.main import main

    settings = _cli_settings(tmp_path, monkeypatch, base_model_dir)
    run = _copy_run(narrow_run.run_dir, tmp_path)
    code = main(["train", "--resume", str(run), "--name", "acme", "--quiet"])
    captured = capsys.readouterr()
    assert code == 2
    assert "the gate refused run" in captured.err and "control" in captured.err
    assert open_registry(settings).list_adapters() == []


def test_other_limits_rejudge_the_saved_gate_without_running_the_model(
    narrow_run: TrainedRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_model_dir: Path,
) -> None:
    from adapters.from_settings import open_registry
    from cli.main import main
    from train import pipeline

    def no_model(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the gate ran the model again")

    monkeypatch.setattr(pipeline, "load_base", no_model)
    settings = _cli_settings(tmp_path, monkeypatch, base_model_dir)
    run = _copy_run(narrow_run.run_dir, tmp_path)
    measured = json.loads((run / "gate.json").read_text())
    command = ["train", "--resume", str(run), "--name", "acme", "--quiet"]
    code = main([*command, "--max-nll-rise", "5", "--max-keywords-lost", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "published acme@v1" in out
    gate = json.loads((run / "gate.json").read_text())
    assert gate["passed"] and not gate["failures"] and not measured["passed"]
    assert gate["control"] == measured["control"] and gate["test"] == measured["test"]
    assert gate["thresholds"]["max_nll_rise"] == 5
    assert [v.version for v in open_registry(settings).list_adapters("acme")] == [1]
