"""A stored adapter version merged into its base model, for serving without lorag.

One merge, up to two outputs (`lorag adapters export`):

- a merged folder (`merged_dir`): an HF model folder (safetensors, config, generation config,
  tokenizer, chat template) that transformers and vLLM load as a plain base model. Serving it
  costs nothing per token for the adapter, but each adapter becomes a full model copy.
- a GGUF file (`gguf_file`, `train.gguf_export`) for llama.cpp, Ollama and LM Studio on a
  laptop, with an Ollama `Modelfile` beside it (`train.ollama_modelfile`).

The base is loaded in float32 on the CPU and the peft adapter folded into it
(`merge_and_unload`: W + (alpha/r)·B·A, in float32), so the merged weights are what the
served base+adapter computes, rounded once to the stored type: the base's own by default
(bfloat16 for the bundled model: 17 of 20 control answers identical to a float32 server's,
docs/benchmarks.md), float32 for identical answers at twice the size. Merging takes ~4 bytes
per base parameter of memory (plus one converted copy while a GGUF is written): fine for
models a CPU serves, a large machine's job for a 7B one.

Every output is written whole or not at all (a temporary sibling renamed into place), and a
target that exists is refused unless `overwrite`: `check_targets` runs before anything is
loaded. `lorag-export.json` in the folder (and `lorag.*` keys in the GGUF) say what was
merged: the adapter version, its sha256, its owner and the base. An adapter a tenant owns
was trained on that tenant's data, and its export carries what it learned: the CLI says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lorag.folders import write_folder_atomically
from train.errors import DependencyMissing, InvalidOption

__all__ = [
    "GGUF_TYPES",
    "MERGED_DTYPES",
    "MODELFILE",
    "STAMP_FILE",
    "ExportPlan",
    "ExportSource",
    "check_targets",
    "export_adapter",
]

STAMP_FILE = "lorag-export.json"
MODELFILE = "Modelfile"
MERGED_DTYPES = ("base", "float32", "bfloat16", "float16")
GGUF_TYPES = ("f16", "q8_0")
"""What `train.gguf_export` writes. This module imports torch, transformers and gguf only when
it exports, so that `lorag --help` and the CLI's choices stay cheap."""


@dataclass(frozen=True)
class ExportSource:
    """The adapter version to merge and the base it is merged into."""

    adapter_dir: Path  # the stored peft folder
    served_name: str  # name@vN
    sha256: str
    owner: str | None
    base_model: str  # folder (or cached hub id) the base is loaded from
    base_name: str  # the base's served name

    def stamp(self) -> dict[str, str | None]:
        return {
            "adapter": self.served_name,
            "adapter_sha256": self.sha256,
            "owner": self.owner,
            "base_model": self.base_name,
        }


@dataclass(frozen=True)
class ExportPlan:
    """What to write: a merged folder, a GGUF file, or both."""

    merged_dir: Path | None = None
    gguf_file: Path | None = None
    gguf_type: str = "q8_0"
    dtype: str = "base"  # the merged folder's weights: the base's own dtype, or one named
    overwrite: bool = False

    @property
    def modelfile(self) -> Path | None:
        return self.gguf_file.parent / MODELFILE if self.gguf_file is not None else None


def check_targets(plan: ExportPlan) -> None:
    """Refuse a plan before anything is loaded: nothing to write, an unknown type, or a target
    that exists (unless `overwrite`). `overwrite` replaces a folder only when an earlier export
    wrote it (it holds `lorag-export.json`): the old folder is deleted, and a mistyped path
    (`--merged ~`) must not delete anything else."""
    if plan.merged_dir is None and plan.gguf_file is None:
        raise InvalidOption("nothing to export: give --merged DIR, --gguf FILE or both")
    if plan.dtype not in MERGED_DTYPES:
        raise InvalidOption(f"dtype {plan.dtype!r}: one of {MERGED_DTYPES}", param="dtype")
    if plan.gguf_type not in GGUF_TYPES:
        raise InvalidOption(f"GGUF type {plan.gguf_type!r}: one of {GGUF_TYPES}", param="gguf")
    folder = plan.merged_dir
    if folder is not None and folder.exists():
        if not folder.is_dir():
            raise InvalidOption(f"{folder} exists and is not a folder", param="merged")
        if any(folder.iterdir()) and not plan.overwrite:
            raise InvalidOption(
                f"{folder} exists and is not empty: pass --overwrite to replace it",
                param="merged",
            )
        if any(folder.iterdir()) and not (folder / STAMP_FILE).is_file():
            raise InvalidOption(
                f"{folder} is not an earlier export (no {STAMP_FILE}): --overwrite replaces "
                "only those; choose a new or empty folder",
                param="merged",
            )
    for path in (plan.gguf_file, plan.modelfile):
        if path is not None and path.exists() and not plan.overwrite:
            raise InvalidOption(
                f"{path} exists: pass --overwrite to replace it (or export to another folder)",
                param="gguf",
            )
        if path is not None and path.is_dir():
            raise InvalidOption(f"{path} is a folder, not a file", param="gguf")


def export_adapter(
    source: ExportSource,
    plan: ExportPlan,
    *,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Path]:
    """Merge `source` and write what `plan` asks for; the paths written, in order."""
    check_targets(plan)
    _require("peft", "merging an adapter needs peft: pip install 'lorag[train]'")
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source.base_model)
    if plan.gguf_file is not None:
        _require("gguf", "GGUF export needs the gguf package: pip install gguf")
        from train.gguf_export import check_exportable

        check_exportable(config)  # before minutes of loading and merging
    model, tokenizer = _merged_model(source, progress)
    written: list[Path] = []
    if plan.gguf_file is not None:  # first: it reads the float32 weights
        written += _write_gguf(model, tokenizer, source, plan, progress)
    if plan.merged_dir is not None:
        dtype = _base_dtype(config) if plan.dtype == "base" else plan.dtype
        written.append(_write_merged(model, tokenizer, source, plan.merged_dir, dtype, progress))
    return written


def _require(module: str, message: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise DependencyMissing(message, param=module)


def _base_dtype(config: Any) -> str:
    """The base's own weight type as `MERGED_DTYPES` names it (float32 when unstated)."""
    name = str(getattr(config, "dtype", None)).removeprefix("torch.")
    return name if name in MERGED_DTYPES else "float32"


def _merged_model(source: ExportSource, progress: Callable[[str], None]) -> tuple[Any, Any]:
    """(the merged model in float32, the base's tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.model_setup import load_adapter

    progress(f"loading {source.base_name} and {source.served_name}")
    tokenizer = AutoTokenizer.from_pretrained(source.base_model)
    model = AutoModelForCausalLM.from_pretrained(source.base_model, dtype=torch.float32)
    progress("merging the adapter into the base weights")
    merged = load_adapter(model, source.adapter_dir).merge_and_unload()
    merged.eval()
    return merged, tokenizer


def _write_merged(
    model: Any,
    tokenizer: Any,
    source: ExportSource,
    target: Path,
    dtype: str,
    progress: Callable[[str], None],
) -> Path:
    import torch

    progress(f"writing the merged model ({dtype}) to {target}")
    stamp = {
        **source.stamp(),
        "dtype": dtype,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }

    def fill(staging: Path) -> None:
        model.to(getattr(torch, dtype)).save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
        (staging / STAMP_FILE).write_text(text, encoding="utf-8")

    return write_folder_atomically(target, fill)


def _write_gguf(
    model: Any,
    tokenizer: Any,
    source: ExportSource,
    plan: ExportPlan,
    progress: Callable[[str], None],
) -> list[Path]:
    from train.gguf_export import write_gguf
    from train.ollama_modelfile import build_modelfile

    gguf_file, modelfile_path = plan.gguf_file, plan.modelfile
    assert gguf_file is not None and modelfile_path is not None
    gguf_file.parent.mkdir(parents=True, exist_ok=True)
    provenance = {key: value for key, value in source.stamp().items() if value is not None}
    write_gguf(
        model,
        tokenizer,
        gguf_file,
        gguf_type=plan.gguf_type,
        name=f"{source.base_name}+{source.served_name}",
        provenance=provenance,
        progress=progress,
    )
    modelfile = build_modelfile(tokenizer, gguf_file.name)
    if modelfile.warning:
        progress(f"warning: {modelfile.warning}")
    staging = modelfile_path.with_name(f".{modelfile_path.name}.partial")
    staging.write_text(modelfile.text, encoding="utf-8")
    os.replace(staging, modelfile_path)
    return [gguf_file, modelfile_path]
