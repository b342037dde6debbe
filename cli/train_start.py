"""What a `lorag train` run starts from: the version `--from` continues, and data that fits
`--method` (kept out of `cli.train`, which declares the options).

`run_parent` reads the parent (from the registry for `--from`, from the run folder for
`--resume`) and gives the options its LoRA shape, refusing a conflicting `--rank`, `--alpha`
or `--target-modules` (`train.parent.parent_shape`). `check_method` refuses a chat file for
`--method dpo` (a preference file for SFT is refused by the data reader itself) and a method
that is not the resumed run's.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lorag.settings import Settings
from train.config import TrainConfig
from train.errors import InvalidOption

if TYPE_CHECKING:
    from train.parent import ParentVersion

__all__ = ["check_method", "run_parent"]


def run_parent(
    args: argparse.Namespace, settings: Settings, overrides: dict[str, Any]
) -> tuple[ParentVersion | None, dict[str, Any]]:
    """The version `--from` names (or the one a resumed run continues), and the options with
    its LoRA shape; (None, options) without one."""
    from train.parent import fetch_parent, parent_shape, read_parent

    if args.resume is not None:
        if args.from_version is not None:
            raise InvalidOption("--resume continues a run with its own parent; drop --from")
        return read_parent(args.resume), overrides
    if args.from_version is None:
        return None, overrides
    from adapters.from_settings import base_model_info, open_registry

    parent = fetch_parent(
        open_registry(settings), args.from_version, base_name=base_model_info(settings).name
    )
    return parent, parent_shape(parent, overrides)


def check_method(args: argparse.Namespace, cfg: TrainConfig) -> None:
    """A preference file for DPO, and a DPO run resumed as one."""
    from train.preferences import looks_like_preferences

    if args.resume is not None:
        if args.method is not None and cfg.method != args.method:
            raise InvalidOption(f"--method {args.method}: the run was made with {cfg.method}")
        return
    if cfg.method == "dpo" and not looks_like_preferences(args.data):
        raise InvalidOption(
            f"--method dpo learns from preference pairs: {args.data.name} is not in OpenAI's "
            "preference format (input, preferred_output, non_preferred_output)",
            param="data",
        )
