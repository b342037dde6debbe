"""The gate: does the adapter help on the user's task without breaking what the base could do?

Three checks, adapter (peft model, adapter on) against base (the same model, adapter off):

(a) test split (examples of the user's file that neither training nor checkpoint choice saw)
    - loss on the reference answers must be lower with the adapter (it learned the task);
    - short reference answers (<= `short_answer_words` words): greedy generations are checked
      for containing / exactly matching the reference; the adapter may not do worse;
    - below `min_test_examples` the gate cannot judge (`train.gate_report`).
(b) control set (general prompts shipped with lorag, or the user's own file)
    - keywords: for every prompt with an `expect` keyword the base's answer contains, the
      adapter's answer must contain it too (at most `max_keywords_lost` may be lost);
    - forgetting: the mean per-token NLL of the base's own greedy answers under the adapter
      may rise at most `max_nll_rise` (nats) over the base's NLL of them.
(c) golden set (the user's file, optional: `train.golden`)
    - every check on every golden prompt must pass on the adapter's answer (at most
      `max_golden_failures` may fail), whatever the base answered.

A DPO run's test split is pairs: (a) is then `train.preference_gate` (preference accuracy and
answers closer to the preferred one, against DPO's reference). A run continued `--from` a
published version is also compared with that parent (`train.parent_gate`): its test loss must
beat the parent's too, and none of the parent's recorded golden checks that the parent passes
may fail on the adapter.

`run_gate` measures and returns a `GateReport` judged against the thresholds (saved as
gate.json in a run folder). Publication is refused when it fails, unless forced.
"""

from __future__ import annotations

import re
import time
from typing import Any

from train.config import GateThresholds
from train.examples import Example, Message
from train.gate_report import (
    ControlReport,
    GateReport,
    GoldenReport,
    GoldenSample,
    ParentReport,
    PreferenceReport,
    TestReport,
)
from train.golden import GoldenSet
from train.inference import AnswerFn, Generation, adapter_merged, answer_nll, greedy_generate
from train.parent_gate import ParentGate, parent_active, parent_answers
from train.preference_gate import preference_check
from train.preferences import PreferencePair
from train.prompt_sets import PromptItem

__all__ = [
    "BaseAnswerFn",
    "GateReport",
    "GateThresholds",
    "direct_base_answers",
    "normalize_answer",
    "run_gate",
]


def normalize_answer(text: str) -> str:
    """Lowercase, punctuation to spaces, whitespace collapsed (for contained/exact matches)."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _mean_nll(scores: list[tuple[float, int]]) -> float | None:
    tokens = sum(count for _, count in scores)
    return sum(nll for nll, _ in scores) / tokens if tokens else None


BaseAnswerFn = AnswerFn
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


def _test_split(
    model: Any,
    tokenizer: Any,
    test: list[Example],
    thresholds: GateThresholds,
    common: dict[str, Any],
    base_answers: BaseAnswerFn,
) -> TestReport:
    conversations = [example.conversation for example in test]
    adapter_loss = _mean_nll(answer_nll(model, tokenizer, conversations, **common))
    with model.disable_adapter():
        base_loss = _mean_nll(answer_nll(model, tokenizer, conversations, **common))
    report: TestReport = {
        "examples": len(test),
        "base_loss": base_loss,
        "adapter_loss": adapter_loss,
    }
    shown = test[: thresholds.max_generations]
    longest = max(len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in shown)
    prompts = [e.prompt_messages for e in shown]
    max_new_tokens = min(max(longest + 48, 32), 256)
    adapter_out = _adapter_answers(model, tokenizer, prompts, max_new_tokens, "test")
    base_out = base_answers("test", prompts, max_new_tokens)
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


def _golden(
    model: Any,
    tokenizer: Any,
    golden_set: GoldenSet,
    base_answers: BaseAnswerFn,
    parent: AnswerFn | None = None,
) -> GoldenReport:
    """Both models (and the parent, if given) answer every golden prompt, one batch per
    `max_new_tokens`; the checks judge the adapter's answers, the base's are checked for the
    report only (a parent's: `ParentReport`)."""
    golden = golden_set.items
    base_out: dict[int, Generation] = {}
    adapter_out: dict[int, Generation] = {}
    parent_out: dict[int, Generation] = {}
    for budget in sorted({item.max_new_tokens for item in golden}):
        indices = [i for i, item in enumerate(golden) if item.max_new_tokens == budget]
        prompts = [list(golden[i].messages) for i in indices]
        adapter_out |= zip(
            indices, _adapter_answers(model, tokenizer, prompts, budget, "golden"), strict=True
        )
        base_out |= zip(indices, base_answers("golden", prompts, budget), strict=True)
        if parent is not None:
            parent_out |= zip(indices, parent("golden", prompts, budget), strict=True)
    samples: list[GoldenSample] = []
    for i, item in enumerate(golden):
        base, adapter = base_out[i].text, adapter_out[i].text
        sample: GoldenSample = {
            "line": item.line,
            "prompt": item.prompt,
            "base": base,
            "adapter": adapter,
            "base_checks": item.check(base),
            "adapter_checks": item.check(adapter),
        }
        if i in parent_out:
            sample["parent"] = parent_out[i].text
            sample["parent_checks"] = item.check(parent_out[i].text)
        samples.append(sample)
    return {
        "file": golden_set.file,
        "sha256": golden_set.sha256,
        "text": golden_set.text,
        "prompts": len(golden),
        "checks": sum(len(sample["adapter_checks"]) for sample in samples),
        "adapter_failed": [
            f"line {sample['line']}: {result['check']}: {result['why']}"
            for sample in samples
            for result in sample["adapter_checks"]
            if not result["passed"]
        ],
        "base_failed": sum(
            not result["passed"] for sample in samples for result in sample["base_checks"]
        ),
        "samples": samples,
    }


def _preferences(
    model: Any,
    tokenizer: Any,
    pairs: list[PreferencePair],
    parent: ParentGate | None,
    base_answers: BaseAnswerFn,
    thresholds: GateThresholds,
    common: dict[str, Any],
) -> PreferenceReport:
    """The DPO check against DPO's reference: the parent when there is one, else the base."""
    if parent is None:
        return preference_check(
            model,
            tokenizer,
            pairs,
            reference="base",
            reference_scope=model.disable_adapter,
            reference_answers=base_answers,
            base_answers=None,
            thresholds=thresholds,
            common=common,
        )
    return preference_check(
        model,
        tokenizer,
        pairs,
        reference=parent.ref,
        reference_scope=lambda: parent_active(model),
        reference_answers=parent_answers(model, tokenizer),
        base_answers=base_answers,
        thresholds=thresholds,
        common=common,
    )


def _parent(
    model: Any,
    tokenizer: Any,
    parent: ParentGate,
    test: list[Example] | None,
    user_golden: GoldenSet | None,
    base_answers: BaseAnswerFn,
    common: dict[str, Any],
) -> ParentReport:
    """The parent's test loss and its golden sets, the adapter's answers beside its own (a set
    that is also the user's `--golden` is judged there, strictly, and not again here)."""
    report: ParentReport = {"ref": parent.ref}
    if test:
        conversations = [example.conversation for example in test]
        with parent_active(model):
            report["test_loss"] = _mean_nll(answer_nll(model, tokenizer, conversations, **common))
    answers = parent_answers(model, tokenizer)
    skip = user_golden.sha256 if user_golden is not None else None
    report["golden"] = [
        _golden(model, tokenizer, golden_set, base_answers, answers)
        for golden_set in parent.golden
        if golden_set.sha256 != skip
    ]
    return report


def run_gate(
    model: Any,
    tokenizer: Any,
    *,
    test: list[Example] | None,
    control: list[PromptItem],
    golden: GoldenSet | None = None,
    base_answers: BaseAnswerFn | None = None,
    thresholds: GateThresholds | None = None,
    control_max_new_tokens: int = 48,
    precision: str = "fp32",
    batch_size: int = 16,
    max_len: int = 1024,
    preferences: list[PreferencePair] | None = None,
    parent: ParentGate | None = None,
) -> GateReport:
    """Run the checks on a peft `model` (adapter on/off); see the module docstring.

    `test` None: this gate has no test set (an imported adapter gated without one); a list,
    even empty, is the test split, judged against `min_test_examples`. `preferences`: a DPO
    run's test pairs (its `test` is None). `parent`: the version the adapter continues, its
    adapter loaded beside the adapter's (`train.parent_gate.load_beside`). Generation runs in
    the model's own dtype (fp32 on CPU, where decoding small batches is faster without
    autocast) in batches of 32; `precision` and `batch_size` apply to the loss passes."""
    thresholds = thresholds or GateThresholds()
    base_answers = base_answers or direct_base_answers(model, tokenizer)
    started = time.monotonic()
    notes: list[str] = []
    common = {"max_len": max_len, "batch_size": batch_size, "precision": precision}
    test_report: TestReport | None = None
    if test:
        test_report = _test_split(model, tokenizer, test, thresholds, common, base_answers)
    elif test is not None:
        test_report = {"examples": 0}
    elif preferences is None:
        notes.append("no test set: the adapter's own task was not measured (--test FILE)")
    preference_report = None
    if preferences is not None:
        preference_report = _preferences(
            model, tokenizer, preferences, parent, base_answers, thresholds, common
        )
    control_report = _control(
        model, tokenizer, control, common, control_max_new_tokens, base_answers
    )
    parent_fn = parent_answers(model, tokenizer) if parent is not None else None
    golden_report = None
    if golden is not None:
        golden_report = _golden(model, tokenizer, golden, base_answers, parent_fn)
    parent_report = None
    if parent is not None:
        parent_report = _parent(model, tokenizer, parent, test, golden, base_answers, common)
        if not parent.golden:
            notes.append(
                f"{parent.ref}'s gate verdict kept no golden set: only its test loss (or, "
                "for DPO, its margins and answers) was compared"
            )
    report = GateReport(
        passed=False,
        failures=[],
        test=test_report,
        control=control_report,
        golden=golden_report,
        thresholds=thresholds.to_json(),
        seconds=round(time.monotonic() - started, 2),
        notes=notes,
        preferences=preference_report,
        parent=parent_report,
    )
    return report.rejudged(thresholds)
