"""Which defaults a run starts from: the QLoRA recipe on a GPU, the measured ones on a CPU,
DPO's own learning rate; options given on the command line win (pure logic, no model)."""

from __future__ import annotations

from train.config import DPO_LR, TrainConfig, recipe_for


def test_a_gpu_run_starts_from_the_qlora_recipe() -> None:
    for device in ("cuda", "cuda:1"):
        cfg = TrainConfig(**recipe_for(device, "sft"))
        assert (cfg.lr, cfg.warmup_steps, cfg.epochs) == (2e-4, 5, 2)
        assert (cfg.quantization, cfg.precision) == ("auto", "auto")  # nf4, bf16 on CUDA


def test_a_cpu_run_keeps_its_measured_defaults() -> None:
    assert recipe_for("cpu", "sft") == {}
    cfg = TrainConfig(**recipe_for("cpu", "sft"))
    assert (cfg.lr, cfg.warmup_steps) == (1e-3, 0)


def test_dpo_has_its_own_learning_rate_and_given_options_win() -> None:
    assert recipe_for("cpu", "dpo") == {"lr": DPO_LR}
    assert recipe_for("cuda", "dpo") == {"lr": DPO_LR, "warmup_steps": 5}
    given = {"lr": 3e-4, "method": "sft"}
    assert TrainConfig(**{**recipe_for("cuda", "sft"), **given}).lr == 3e-4
