"""The parent version in the gate of a run continued `--from` it.

The gate loads the parent's adapter into the same peft model as the child's, under the name
`PARENT_ADAPTER`: the base is the model with every adapter off (`disable_adapter`), the child
the default adapter, the parent the other one (`parent_active`). One model in memory, three
models to compare, no second load of the base. What the gate does with it (`train.gate`):
the parent's loss on the test split, its answers to every golden prompt (its own recorded
golden sets and the user's), and, for DPO, the reference margins and answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.examples import Message
from train.golden import GoldenSet
from train.inference import AnswerFn, Generation, adapter_merged, greedy_generate
from train.parent import PARENT_ADAPTER

__all__ = ["ParentGate", "load_beside", "parent_active", "parent_answers"]


@dataclass(frozen=True)
class ParentGate:
    """The parent as the gate needs it: its reference and its recorded golden sets (its
    adapter is loaded beside the child's with `load_beside`)."""

    ref: str
    golden: tuple[GoldenSet, ...] = ()


def load_beside(model: Any, adapter_dir: Path) -> None:
    """Load the parent's adapter into the child's peft `model`, the child staying active."""
    active = model.active_adapter
    model.load_adapter(str(adapter_dir), adapter_name=PARENT_ADAPTER)
    model.set_adapter(active)


@contextmanager
def parent_active(model: Any) -> Iterator[None]:
    """The parent's adapter instead of the child's for the duration."""
    active = model.active_adapter
    model.set_adapter(PARENT_ADAPTER)
    try:
        yield
    finally:
        model.set_adapter(active)


def parent_answers(model: Any, tokenizer: Any) -> AnswerFn:
    """Greedy answers of the parent (merged into the base while it answers)."""

    def answer(kind: str, prompts: list[list[Message]], max_new_tokens: int) -> list[Generation]:
        with parent_active(model), adapter_merged(model):
            return greedy_generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                desc=f"gate: parent ({kind})",
            )

    return answer
