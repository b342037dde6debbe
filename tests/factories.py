"""Test helpers that build real artifacts: peft LoRA (and IA3) adapters, and tiny Llama bases.

`make_lora_adapter` loads the base model with transformers, wraps it with peft (lora_A from
peft's "gaussian" init, std 1/r), gives `lora_B` non-zero values (std `b_std`; peft starts it
at zero, which would change nothing) and saves it with `save_pretrained`. With the defaults
(r=8, q_proj/v_proj, b_std 0.1) the bundled model's greedy answers change visibly; with
peft's default lora_A init, b_std 0.2 still did not change them.

The result depends only on the arguments, and a folder already made with the same arguments
is reused (a `factory.json` stamp beside the artifact records them), so session fixtures and
repeated runs stay fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["make_ia3_adapter", "make_lora_adapter", "make_tiny_llama"]

_STAMP = "factory.json"


def make_lora_adapter(
    base_dir: Path,
    out_dir: Path,
    *,
    rank: int = 8,
    seed: int = 0,
    targets: Sequence[str] = ("q_proj", "v_proj"),
    b_std: float = 0.1,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> Path:
    """A real peft LoRA adapter for the model in `base_dir`, saved in `out_dir` (returned).

    `alpha` defaults to 2 * rank. Same arguments, same weights (and a reused folder).
    """
    from peft import LoraConfig

    params = {
        "kind": "lora",
        "init": "gaussian",
        "base": str(Path(base_dir).resolve()),
        "rank": rank,
        "seed": seed,
        "targets": sorted(targets),
        "b_std": b_std,
        "alpha": alpha,
        "dropout": dropout,
    }
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=dropout,
        target_modules=list(targets),
        init_lora_weights="gaussian",
        task_type="CAUSAL_LM",
    )
    return _make_adapter(base_dir, out_dir, config, params, seed=seed, b_std=b_std)


def make_ia3_adapter(
    base_dir: Path, out_dir: Path, *, seed: int = 0, targets: Sequence[str] = ("k_proj", "v_proj")
) -> Path:
    """A real peft IA3 adapter (not LoRA) for the model in `base_dir`."""
    from peft import IA3Config

    params = {
        "kind": "ia3",
        "base": str(Path(base_dir).resolve()),
        "seed": seed,
        "targets": sorted(targets),
    }
    config = IA3Config(target_modules=list(targets), feedforward_modules=[], task_type="CAUSAL_LM")
    return _make_adapter(base_dir, out_dir, config, params, seed=seed, b_std=None)


def make_tiny_llama(
    out_dir: Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """A randomly initialised tiny Llama saved as an HF folder (config + safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    params = {"kind": "tiny-llama", "hidden": hidden_size, "layers": layers, "seed": seed}
    if _stamp_matches(out_dir, params, ("config.json", "model.safetensors")):
        return out_dir
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir, safe_serialization=True)
    _write_stamp(out_dir, params)
    return out_dir


def _make_adapter(
    base_dir: Path,
    out_dir: Path,
    config: Any,
    params: dict[str, Any],
    *,
    seed: int,
    b_std: float | None,
) -> Path:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    if _stamp_matches(out_dir, params, ("adapter_config.json", "adapter_model.safetensors")):
        return out_dir
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
        if b_std is not None:
            with torch.no_grad():
                for name, param in peft_model.named_parameters():
                    if ".lora_B." in name:
                        param.normal_(mean=0.0, std=b_std)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    _write_stamp(out_dir, params)
    return out_dir


def _stamp_matches(out_dir: Path, params: dict[str, Any], files: Sequence[str]) -> bool:
    stamp = out_dir / _STAMP
    if not stamp.is_file() or not all((out_dir / name).is_file() for name in files):
        return False
    try:
        return json.loads(stamp.read_text()) == params
    except ValueError:
        return False


def _write_stamp(out_dir: Path, params: dict[str, Any]) -> None:
    (out_dir / _STAMP).write_text(json.dumps(params, sort_keys=True))
