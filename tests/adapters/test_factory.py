"""tests.factories builds real, deterministic peft LoRA adapters that change the model's answer."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from adapters.artifact_files import WEIGHTS_FILE
from tests.factories import make_lora_adapter

PROMPT = "What is the capital of France? Answer in one sentence."


def _greedy(model, tokenizer) -> str:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def test_factory_adapter_is_deterministic_and_changes_greedy_output(
    base_model_dir: Path, lora_a: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    again = make_lora_adapter(base_model_dir, tmp_path / "again", rank=8, seed=0)
    first, second = load_file(lora_a / WEIGHTS_FILE), load_file(again / WEIGHTS_FILE)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    b_std = torch.cat([t.flatten() for k, t in first.items() if "lora_B" in k]).std().item()
    assert 0.08 < b_std < 0.12

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model_dir, dtype=torch.float32)
    base_answer = _greedy(model, tokenizer)
    assert "Paris" in base_answer
    adapted = PeftModel.from_pretrained(model, lora_a)
    assert _greedy(adapted, tokenizer) != base_answer
