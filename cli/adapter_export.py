"""`lorag adapters export NAME[@vN] --merged DIR --gguf FILE`: a stored version merged into the
base model, to serve it without lorag (the work is `train.export`'s)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.from_settings import open_registry
from cli.output import print_error, size
from lorag.base_model import prepare_bundled_model, resolve_base_model, served_model_name
from lorag.names import parse_ref
from lorag.settings import Settings
from train.errors import DependencyMissing
from train.export import GGUF_TYPES, MERGED_DTYPES, MODELFILE, STAMP_FILE

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["register_export"]

_DESCRIPTION = f"""\
Merge a stored adapter version into the base model (in float32: the merged weights are what
the served base+adapter computes) and write one or both of:

  --merged DIR   an HF model folder (safetensors, config, tokenizer, chat template,
                 {STAMP_FILE}): transformers and vLLM load it as a plain base model
                 (`vllm serve DIR`), with no LoRA at serving time; one full model copy per
                 adapter. --dtype picks its weight type (default: the base model's own).
  --gguf FILE    one GGUF file for llama.cpp, Ollama and LM Studio (laptops, no GPU needed),
                 q8_0 (default, ~half the f16 size) or f16, with an Ollama `{MODELFILE}`
                 beside it carrying the chat template and its default system prompt:
                 `ollama create NAME -f {MODELFILE}` in that folder.

An adapter owned by a tenant was trained on that tenant's data, and its export holds what it
learned from it: treat the files like the tenant's data (where they go, who may read them).
An existing target is refused unless --overwrite; each is written whole or not at all."""


def register_export(actions: Commands) -> None:
    """Add `lorag adapters export`."""
    cmd = actions.add_parser(
        "export",
        help="merge a version into the base model: an HF folder (vLLM, transformers) and/or a "
        "GGUF file (llama.cpp, Ollama)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.add_argument("--merged", type=Path, metavar="DIR", help="write the merged HF folder here")
    cmd.add_argument("--gguf", type=Path, metavar="FILE", help="write the GGUF file here")
    cmd.add_argument(
        "--gguf-type",
        choices=GGUF_TYPES,
        default="q8_0",
        help="GGUF weight type: q8_0 (8-bit blocks, default) or f16",
    )
    cmd.add_argument(
        "--dtype",
        choices=MERGED_DTYPES,
        default="base",
        help="weight type of the merged folder (default: base, the base model's own)",
    )
    cmd.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing targets (a folder only if an earlier export wrote it)",
    )
    cmd.set_defaults(handler=_export_adapter)


def _export_adapter(args: argparse.Namespace, settings: Settings) -> int:
    from train.export import ExportPlan, ExportSource, check_targets, export_adapter

    plan = ExportPlan(
        merged_dir=args.merged,
        gguf_file=args.gguf,
        gguf_type=args.gguf_type,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    check_targets(plan)
    registry = open_registry(settings)
    ref = parse_ref(args.ref)
    version = registry.get_version(ref.name, ref.version)
    if settings.base_model is None:
        prepare_bundled_model(settings)
    source = ExportSource(
        adapter_dir=registry.artifact_path(version),
        served_name=version.served_name,
        sha256=version.sha256,
        owner=version.owner,
        base_model=resolve_base_model(settings),
        base_name=served_model_name(settings),
    )
    if version.owner is not None:
        print(
            f"note: {version.served_name} is owned by tenant {version.owner}: the export holds "
            "what it learned from that tenant's data",
            file=sys.stderr,
        )
    logging.getLogger("gguf").setLevel(logging.WARNING)  # its per-file notes repeat ours
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        written = export_adapter(source, plan, progress=progress)
    except DependencyMissing as exc:  # the user installs it: one line, no traceback
        print_error(exc.message)
        return 2
    for path in written:
        print(f"wrote {path} ({size(_bytes(path))})")
    return 0


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
