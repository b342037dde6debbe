"""Real LoRA training on the bundled model: the format is learned, forgetting is caught by
the gate unless the general mix is on, the artifacts are what vLLM loads, resume continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from tests.train.background import TrainedRun
from tests.train.conftest import MIX_STEPS, follows_format
from train.examples import read_examples
from train.gate import GateThresholds


def test_format_learned_with_general_mix_and_gate_passes(mixed_run: TrainedRun) -> None:
    gate = mixed_run.gate
    samples = gate.test["samples"]
    assert len(samples) >= 5
    adapter_ok = sum(follows_format(s["adapter"]) for s in samples)
    base_ok = sum(follows_format(s["base"]) for s in samples)
    assert adapter_ok >= len(samples) - 1, [s["adapter"] for s in samples]
    assert base_ok == 0
    assert gate.test["adapter_loss"] < gate.test["base_loss"]
    assert gate.passed, gate.failures
    assert gate.control["keywords_checked"] >= 8
    paris = next(s for s in gate.control["samples"] if s["expect"] == ["Paris"])
    assert "Paris" in paris["adapter"]


def test_forgetting_is_caught_without_general_mix(narrow_run: TrainedRun) -> None:
    gate = narrow_run.gate
    assert gate.test is not None
    assert sum(follows_format(s["adapter"]) for s in gate.test["samples"]) >= 5
    assert not gate.passed
    assert any(f.startswith("control") for f in gate.failures), gate.failures
    assert gate.control["nll_rise"] > GateThresholds().max_nll_rise


def test_run_folder_holds_card_curve_gate_and_a_servable_adapter(mixed_run: TrainedRun) -> None:
    run_dir, gate = mixed_run.run_dir, mixed_run.gate
    card = json.loads((run_dir / "run_card.json").read_text())
    data = card["data"]
    assert data["sha256"] and data["format"] == "chat" and data["records"] == 60
    assert (data["train"], data["validation"], data["test"]) == (48, 6, 6)
    assert data["general_mixed"] == 17
    splits = {
        name: {json.dumps(e.prompt_messages) for e in read_examples(run_dir / "data" / name)}
        for name in ("train.jsonl", "validation.jsonl", "test.jsonl")
    }
    assert len(splits["test.jsonl"]) == 6 and len(splits["validation.jsonl"]) == 6
    assert not splits["test.jsonl"] & (splits["validation.jsonl"] | splits["train.jsonl"])
    assert not splits["validation.jsonl"] & splits["train.jsonl"]
    assert gate.test is not None and gate.test["examples"] == 6
    assert card["hyperparameters"]["rank"] == 16 and card["hyperparameters"]["lr"] == 1e-3
    assert card["metrics"]["steps"] == MIX_STEPS and card["metrics"]["tokens_per_s"] > 0
    assert card["gate"]["gate_passed"] is True
    assert {"torch", "transformers", "peft", "python"} <= set(card["libraries"])
    assert card["device"]["device"].startswith("cpu") and card["duration_s"] > 0
    assert (run_dir / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "gate.json").read_text())["passed"] is True

    adapter = run_dir / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 16 and config["lora_alpha"] == 32
    assert set(config["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert not config.get("modules_to_save")
    with safe_open(adapter / "adapter_model.safetensors", "pt") as weights:
        keys = list(weights.keys())
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert not any("embed" in k or "lm_head" in k for k in keys)
    assert len(keys) == 30 * 7 * 2


def test_resume_continues_from_a_checkpoint(resumed_runs: Path) -> None:
    """Stopped after step 2 (only that checkpoint kept) and resumed in the background
    (tests/train/resume_job.py): steps 3-4 match an uninterrupted run exactly (weights,
    optimizer, step counter and RNG were restored)."""
    full, resumed = resumed_runs / "full", resumed_runs / "resumed"
    saved = [
        json.loads((resumed / "checkpoints" / name / "state.json").read_text())["step"]
        for name in ("step-000002", "step-000004")
    ]
    assert saved == [2, 4]  # it went on from the step-2 checkpoint and saved at step 4
    card = json.loads((resumed / "run_card.json").read_text())
    assert card["metrics"]["steps"] == 4 == card["metrics"]["total_steps"]

    def losses(run: Path) -> dict[int, float]:
        rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        return {row["step"]: row["loss"] for row in rows if "loss" in row}

    assert sorted(losses(resumed)) == [3, 4]  # it did not start over
    assert losses(resumed)[3] == pytest.approx(losses(full)[3], abs=1e-5)
    assert losses(resumed)[4] == pytest.approx(losses(full)[4], abs=1e-5)
    with (
        safe_open(full / "adapter" / "adapter_model.safetensors", "pt") as a,
        safe_open(resumed / "adapter" / "adapter_model.safetensors", "pt") as b,
    ):
        assert sorted(a.keys()) == sorted(b.keys()) and len(list(a.keys())) == 30 * 7 * 2
        for key in sorted(a.keys()):
            assert (a.get_tensor(key) - b.get_tensor(key)).abs().max() < 1e-5, key
