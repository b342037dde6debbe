"""The gate: does the adapter help on the user's task without breaking what the base could do?

Two checks, adapter (peft model, adapter on) against base (the same model, adapter off):

(a) held-out split (the user's validation examples)
    - loss on the reference answers must be lower with the adapter (it learned the task);
    - short reference answers (<= `short_answer_words` words): greedy generations are checked
      for containing / exactly matching the reference; the adapter may not do worse.
(b) control set (general prompts shipped with lorag, or the user's own file)
    - keywords: for every prompt with an `expect` keyword the base's answer contains, the
      adapter's answer must contain it too (at most `max_keywords_lost` may be lost);
    - forgetting: the mean per-token NLL of the base's own greedy answers under the adapter
      may rise at most `max_nll_rise` (nats) over the base's NLL of them.

`run_gate` returns a `GateReport` (saved as gate.json in the run folder). Publication is
refused when it fails, unless forced.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypedDict

from train.config import GateThresholds
from train.examples import Example, Message
from train.inference import Generation, adapter_merged, answer_nll, greedy_generate
from train.prompt_sets import PromptItem

__all__ = [
    "BaseAnswerFn",
    "ControlReport",
    "ControlSample",
    "GateReport",
    "GateThresholds",
    "HeldOutReport",
    "HeldOutSample",
    "ShortAnswers",
    "direct_base_answers",
    "gate_failures",
    "normalize_answer",
    "run_gate",
]


class ShortAnswers(TypedDict):
    """Held-out answers of a few words: how often each model's answer holds the reference."""

    count: int
    base_contained: float
    adapter_contained: float
    base_exact: float
    adapter_exact: float


class HeldOutSample(TypedDict):
    prompt: str
    reference: str
    base: str
    adapter: str


class HeldOutReport(TypedDict, total=False):
    """The held-out check (only `examples`, 0, when there were no held-out examples)."""

    examples: int
    base_loss: float | None
    adapter_loss: float | None
    short_answers: ShortAnswers
    samples: list[HeldOutSample]


class ControlSample(TypedDict):
    prompt: str
    expect: list[str]
    base: str
    adapter: str


class ControlReport(TypedDict):
    """The control check: the base's own answers and keywords, with the adapter on."""

    prompts: int
    keywords_checked: int
    keywords_lost: list[str]
    base_nll: float | None
    adapter_nll: float | None
    nll_rise: float
    samples: list[ControlSample]


@dataclass
class GateReport:
    """The gate's verdict and measurements; the sections are plain JSON objects (TypedDicts),
    as stored in a run's `gate.json` and the registry."""

    passed: bool
    failures: list[str]
    held_out: HeldOutReport
    control: ControlReport
    thresholds: dict[str, Any]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # digests of what was gated

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateReport:
        return cls(**data)

    def judged(self, thresholds: GateThresholds) -> GateReport:
        """The same measurements judged against other pass/fail thresholds (no model runs).
        `short_answer_words` and `max_generations` shape what was measured: they stay."""
        failures = gate_failures(self.held_out, self.control, thresholds)
        kept = {"short_answer_words", "max_generations"}
        limits = {**thresholds.to_json(), **{k: self.thresholds[k] for k in kept}}
        return replace(self, passed=not failures, failures=failures, thresholds=limits)

    def summary(self) -> dict[str, Any]:
        """The headline numbers (for the registry's metrics and the CLI)."""
        return {
            "gate_passed": self.passed,
            "val_loss_base": self.held_out.get("base_loss"),
            "val_loss_adapter": self.held_out.get("adapter_loss"),
            "control_nll_rise": self.control.get("nll_rise"),
            "control_keywords_lost": len(self.control.get("keywords_lost", [])),
        }


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed (for contained/exact matches)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _mean_nll(scores: list[tuple[float, int]]) -> float | None:
    tokens = sum(count for _, count in scores)
    return sum(nll for nll, _ in scores) / tokens if tokens else None


BaseAnswerFn = Callable[[str, list[list[Message]], int], list[Generation]]
"""(kind, prompts, max_new_tokens) -> the base model's greedy answers; the pipeline passes
one that caches them (they only depend on the base model and the prompts)."""


def direct_base_answers(model: Any, tokenizer: Any, batch_size: int = 32) -> BaseAnswerFn:
    """Answers from `model` with its adapter switched off (no cache)."""

    def answer(kind: str, prompts: list[list[Message]], max_new_tokens: int) -> list[Generation]:
        with model.disable_adapter():
            return greedy_generate(
                model,
                tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                desc=f"gate: base ({kind})",
            )

    return answer


def _adapter_answers(
    model: Any, tokenizer: Any, prompts: list[list[Message]], max_new_tokens: int, kind: str
) -> list[Generation]:
    with adapter_merged(model):
        return greedy_generate(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, desc=f"gate: adapter ({kind})"
        )


def _held_out(
    model: Any,
    tokenizer: Any,
    validation: list[Example],
    thresholds: GateThresholds,
    common: dict[str, Any],
    base_answers: BaseAnswerFn,
) -> HeldOutReport:
    conversations = [example.conversation for example in validation]
    adapter_loss = _mean_nll(answer_nll(model, tokenizer, conversations, **common))
    with model.disable_adapter():
        base_loss = _mean_nll(answer_nll(model, tokenizer, conversations, **common))
    report: HeldOutReport = {
        "examples": len(validation),
        "base_loss": base_loss,
        "adapter_loss": adapter_loss,
    }
    shown = validation[: thresholds.max_generations]
    longest = max(len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in shown)
    prompts = [e.prompt_messages for e in shown]
    max_new_tokens = min(max(longest + 48, 32), 256)
    adapter_out = _adapter_answers(model, tokenizer, prompts, max_new_tokens, "held-out")
    base_out = base_answers("heldout", prompts, max_new_tokens)
    short = [  # text answers only: a tool call's text is the chat template's, not the reference's
        i
        for i, e in enumerate(shown)
        if len(e.answer.split()) <= thresholds.short_answer_words
        and not e.messages[-1].get("tool_calls")
    ]
    if short:

        def rates(outputs: list[Generation]) -> tuple[float, float]:
            refs = [normalize_answer(shown[i].answer) for i in short]
            gens = [normalize_answer(outputs[i].text) for i in short]
            contained = sum(ref in gen for ref, gen in zip(refs, gens, strict=True))
            exact = sum(ref == gen for ref, gen in zip(refs, gens, strict=True))
            return contained / len(short), exact / len(short)

        (base_contained, base_exact), (adapter_contained, adapter_exact) = (
            rates(base_out),
            rates(adapter_out),
        )
        report["short_answers"] = {
            "count": len(short),
            "base_contained": base_contained,
            "adapter_contained": adapter_contained,
            "base_exact": base_exact,
            "adapter_exact": adapter_exact,
        }
    report["samples"] = [
        {
            "prompt": e.prompt_messages[-1]["content"],
            "reference": e.answer,
            "base": b.text,
            "adapter": a.text,
        }
        for e, b, a in zip(shown, base_out, adapter_out, strict=True)
    ]
    return report


def _control(
    model: Any,
    tokenizer: Any,
    control: list[PromptItem],
    common: dict[str, Any],
    max_new_tokens: int,
    base_answers: BaseAnswerFn,
) -> ControlReport:
    prompts = [item.messages for item in control]
    adapter_answers = _adapter_answers(model, tokenizer, prompts, max_new_tokens, "control")
    base_outputs = base_answers("control", prompts, max_new_tokens)
    checked, lost = [], []
    for item, base, adapter in zip(control, base_outputs, adapter_answers, strict=True):
        if item.expect and item.found_in(base.text):
            checked.append(item.prompt)
            if not item.found_in(adapter.text):
                lost.append(f"{item.prompt} -> {'/'.join(item.expect)}")
    conversations = [
        [*item.messages, {"role": "assistant", "content": base.text}]
        for item, base in zip(control, base_outputs, strict=True)
    ]
    open_ends = [not base.finished for base in base_outputs]
    adapter_nll = _mean_nll(
        answer_nll(model, tokenizer, conversations, open_ends=open_ends, **common)
    )
    with model.disable_adapter():
        base_nll = _mean_nll(
            answer_nll(model, tokenizer, conversations, open_ends=open_ends, **common)
        )
    rise = (adapter_nll or 0.0) - (base_nll or 0.0)
    return {
        "prompts": len(control),
        "keywords_checked": len(checked),
        "keywords_lost": lost,
        "base_nll": base_nll,
        "adapter_nll": adapter_nll,
        "nll_rise": rise,
        "samples": [
            {"prompt": item.prompt, "expect": list(item.expect), "base": b.text, "adapter": a.text}
            for item, b, a in zip(control, base_outputs, adapter_answers, strict=True)
        ],
    }


def run_gate(
    model: Any,
    tokenizer: Any,
    *,
    validation: list[Example],
    control: list[PromptItem],
    base_answers: BaseAnswerFn | None = None,
    thresholds: GateThresholds | None = None,
    control_max_new_tokens: int = 48,
    precision: str = "fp32",
    batch_size: int = 16,
    max_len: int = 1024,
) -> GateReport:
    """Run both checks on a peft `model` (adapter on/off); see the module docstring.

    Generation runs in the model's own dtype (fp32 on CPU, where decoding small batches is
    faster without autocast) in batches of 32; `precision` and `batch_size` apply to the
    loss passes."""
    thresholds = thresholds or GateThresholds()
    base_answers = base_answers or direct_base_answers(model, tokenizer)
    started = time.monotonic()
    notes: list[str] = []
    common = {"max_len": max_len, "batch_size": batch_size, "precision": precision}
    if validation:
        held_out = _held_out(model, tokenizer, validation, thresholds, common, base_answers)
    else:
        held_out = {"examples": 0}
        notes.append("no held-out examples (val_fraction 0): the held-out check was skipped")
    control_report = _control(
        model, tokenizer, control, common, control_max_new_tokens, base_answers
    )
    report = GateReport(
        passed=False,
        failures=[],
        held_out=held_out,
        control=control_report,
        thresholds=thresholds.to_json(),
        seconds=round(time.monotonic() - started, 2),
        notes=notes,
    )
    return report.judged(thresholds)


def gate_failures(
    held_out: HeldOutReport, control: ControlReport, thresholds: GateThresholds
) -> list[str]:
    """What fails the gate: the measurements of `run_gate` against `thresholds`."""
    failures = []
    base_loss, adapter_loss = held_out.get("base_loss"), held_out.get("adapter_loss")
    if (
        base_loss is not None
        and adapter_loss is not None
        and base_loss - adapter_loss < thresholds.min_val_loss_gain
    ):
        failures.append(
            f"held-out loss did not improve: adapter {adapter_loss:.4f} vs base {base_loss:.4f}"
        )
    short = held_out.get("short_answers")
    if short and short["adapter_contained"] < short["base_contained"] - thresholds.max_match_drop:
        failures.append(
            f"short held-out answers: adapter matches {short['adapter_contained']:.0%} of "
            f"references, base {short['base_contained']:.0%}"
        )
    lost = control["keywords_lost"]
    if len(lost) > thresholds.max_keywords_lost:
        failures.append(f"control keywords lost ({len(lost)}): " + "; ".join(lost))
    rise = control["nll_rise"]
    if rise > thresholds.max_nll_rise:
        failures.append(
            f"control NLL of the base's own answers rose by {rise:.3f} nats/token "
            f"(base {control['base_nll']:.3f}, adapter {control['adapter_nll']:.3f}; "
            f"limit {thresholds.max_nll_rise})"
        )
    return failures
