"""Write the bundled model's answers that lorag ships: `python -m train.ship_answers`.

The general mix and the gate need the base model's own greedy answers to lorag's general and
control prompts. For the bundled model they are made once, here, with the same cache keys a
training run and the gate use, into `train/data/base_answers/` (committed): a first run on the
bundled model then reads them instead of generating them. Rerun it after changing a prompt
list, a generation length or the bundled model; the suite fails while a shipped answer is no
longer the model's greedy answer (tests/train/test_base_answers.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from train.base_answers import SHIPPED_ANSWERS, base_fingerprint, cached_base_answers
from train.inference import Generation, greedy_generate
from train.model_setup import load_base
from train.pipeline import DataOptions, GateOptions
from train.prompt_sets import load_prompts

__all__ = ["SHIPPED_KINDS", "ship_answers"]

SHIPPED_KINDS = (  # (kind, prompt list, max_new_tokens), as a run and its gate ask for them
    ("general", DataOptions.general_prompts, DataOptions.general_max_new_tokens),
    ("control", GateOptions.control, GateOptions.control_max_new_tokens),
)
DEVICE = "cpu"  # generation on CPU in fp32: the answers every CPU run looks up


def ship_answers(base_model: str, out: Path = SHIPPED_ANSWERS) -> list[Path]:
    """Generate the answers of every `SHIPPED_KINDS` entry into `out` (old files removed)."""
    model, tokenizer = load_base(base_model, device=DEVICE)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.jsonl"):
        stale.unlink()
    base_key = base_fingerprint(base_model)
    for kind, prompt_file, max_new_tokens in SHIPPED_KINDS:
        prompts = [item.messages for item in load_prompts(prompt_file)]

        def generate(
            missing: list[list[dict[str, str]]], tokens: int = max_new_tokens, desc: str = kind
        ) -> list[Generation]:
            return greedy_generate(model, tokenizer, missing, max_new_tokens=tokens, desc=desc)

        cached_base_answers(
            prompts,
            kind=kind,
            cache_dir=out,
            base_key=base_key,
            settings={"max_new_tokens": max_new_tokens, "device": DEVICE},
            generate=generate,
            shipped=None,
        )
    return sorted(out.glob("*.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-model", help="HF model folder (default: the bundled model, prepared if needed)"
    )
    parser.add_argument("--out", type=Path, default=SHIPPED_ANSWERS, help="folder to write")
    args = parser.parse_args()
    base_model = args.base_model
    if base_model is None:
        from lorag.base_model import prepare_bundled_model
        from lorag.settings import Settings

        base_model = str(prepare_bundled_model(Settings()))
    for path in ship_answers(base_model, args.out):
        print(path)


if __name__ == "__main__":
    main()
