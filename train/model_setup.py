"""Loading the base model for training or evaluation, and putting LoRA on it.

Three ways, picked by `quantization` and the device:

    CPU            fp32 weights, plain LoRA (bf16 autocast is the trainer's `precision`)
    CUDA, "none"   bf16 weights, plain LoRA (adapter weights stay fp32)
    CUDA, "nf4"    QLoRA: 4-bit NF4 base with double quantization and bf16 compute
                   (bitsandbytes), prepared with `prepare_model_for_kbit_training`

Only the LoRA matrices are trained and saved (no embedding layers, no `modules_to_save`),
which is what vLLM can serve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lorag.hardware import Precision, detect_cpu, training_precision
from train.errors import DependencyMissing, InvalidOption

__all__ = [
    "attach_lora",
    "load_adapter",
    "load_base",
    "pick_device",
    "resolve_precision",
    "resolve_quantization",
]


def pick_device(requested: str = "auto") -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; otherwise the request, checked."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidOption(
            f"device {requested!r} asked for, but CUDA is not available", param="device"
        )
    return requested


def resolve_quantization(requested: str, device: str) -> str:
    """ "auto" -> "nf4" (QLoRA) on CUDA, "none" elsewhere; nf4 off CUDA is refused."""
    if requested == "auto":
        return "nf4" if device.startswith("cuda") else "none"
    if requested == "nf4" and not device.startswith("cuda"):
        raise InvalidOption("QLoRA (nf4) needs a CUDA GPU", param="quantization")
    if requested not in ("none", "nf4"):
        raise InvalidOption(f"unknown quantization {requested!r}", param="quantization")
    return requested


def resolve_precision(requested: str, device: str) -> Precision:
    """The autocast precision for `device` ("auto" decided from the GPU or the CPU's flags),
    with its reason, which the CLI prints and the run card records."""
    return training_precision(requested, device, detect_cpu())


def load_tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise InvalidOption(f"{base_model} has no chat template", param="base_model")
    return tokenizer


def load_base(
    base_model: str,
    *,
    device: str,
    quantization: str = "none",
    gradient_checkpointing: bool = False,
) -> tuple[Any, Any]:
    """(model, tokenizer) of the base, ready for `attach_lora` or `load_adapter`."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(base_model)
    if quantization == "nf4":
        model = _load_nf4(base_model, device, gradient_checkpointing)
    else:
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
        model = model.to(device)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    return model, tokenizer


def _load_nf4(base_model: str, device: str, gradient_checkpointing: bool) -> Any:
    """The QLoRA base: runs only where CUDA and bitsandbytes are present."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise DependencyMissing(
            "QLoRA needs bitsandbytes: pip install 'lorag[train]' (or --quantization none)",
            param="quantization",
        ) from exc
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    index = torch.device(device).index or 0
    model = AutoModelForCausalLM.from_pretrained(
        base_model, quantization_config=quant, dtype=torch.bfloat16, device_map={"": index}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def attach_lora(
    model: Any, *, rank: int, alpha: int, dropout: float, targets: tuple[str, ...]
) -> Any:
    """Wrap `model` in a fresh peft LoRA on `targets` (linear layers only)."""
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in targets if target not in present]
    if missing:
        raise InvalidOption(
            f"target modules {missing} are not in the base model", param="target_modules"
        )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_adapter(model: Any, adapter_dir: Path, *, trainable: bool = False) -> Any:
    """The base `model` with the saved adapter in `adapter_dir` on top."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
