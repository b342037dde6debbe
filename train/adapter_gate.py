"""Gating an adapter folder: load the base and the adapter, answer with cached base answers,
run the gate (`train.gate`).

Shared by a training run's gate (`train.pipeline.gate_run`, the run's `adapter/`) and
`lorag adapters gate NAME@vN` (a stored registry version, imported or trained): the same
checks, whatever made the adapter. The base model's answers depend only on the base and the
prompts, so they are cached on disk (`train.base_answers`) and a second gate with the same
control or golden file generates only the adapter's.
"""

from __future__ import annotations

from pathlib import Path

from train.base_answers import base_fingerprint, cached_base_answers
from train.config import GateThresholds
from train.examples import Example, Message
from train.gate import direct_base_answers, run_gate
from train.gate_report import GateReport
from train.golden import load_golden_set
from train.inference import Generation
from train.model_setup import load_adapter, load_base
from train.parent_gate import ParentGate, load_beside
from train.preferences import PreferencePair
from train.prompt_sets import load_prompts

__all__ = ["gate_adapter"]


def gate_adapter(
    adapter_dir: Path,
    *,
    base_model: str,
    test: list[Example] | None,
    control: Path,
    golden: Path | None,
    thresholds: GateThresholds,
    cache_dir: Path,
    device: str,
    control_max_new_tokens: int = 48,
    max_len: int = 1024,
    preferences: list[PreferencePair] | None = None,
    parent: tuple[str, Path, list[Path]] | None = None,
) -> GateReport:
    """Gate the peft adapter in `adapter_dir` against `base_model` (see `run_gate` for `test`
    and `preferences`). `parent`: (ref, adapter folder, golden files) of the version the
    adapter continues, compared with it as well as with the base.

    The control and golden files are read first: a bad line stops the gate before any model
    is loaded."""
    control_items = load_prompts(control)
    golden_set = load_golden_set(golden) if golden is not None else None
    parent_gate = None
    if parent is not None:
        ref, _, golden_files = parent
        parent_gate = ParentGate(ref, tuple(load_golden_set(path) for path in golden_files))
    model, tokenizer = load_base(base_model, device=device)
    model = load_adapter(model, adapter_dir)
    if parent is not None:
        load_beside(model, parent[1])
    direct = direct_base_answers(model, tokenizer)
    base_key = base_fingerprint(base_model)

    def base_answers(
        kind: str, prompts: list[list[Message]], max_new_tokens: int
    ) -> list[Generation]:
        return cached_base_answers(
            prompts,
            kind=kind,
            cache_dir=cache_dir,
            base_key=base_key,
            settings={"max_new_tokens": max_new_tokens, "device": device},
            generate=lambda missing: direct(kind, missing, max_new_tokens),
        )

    return run_gate(
        model,
        tokenizer,
        test=test,
        control=control_items,
        golden=golden_set,
        base_answers=base_answers,
        thresholds=thresholds,
        control_max_new_tokens=control_max_new_tokens,
        max_len=max_len,
        preferences=preferences,
        parent=parent_gate,
    )
