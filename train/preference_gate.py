"""The gate's check of a DPO adapter on its test pairs (pairs neither training nor checkpoint
choice saw), against the reference DPO held it to (the base, or the `--from` version).

- preference accuracy: the share of pairs whose margin, log p(preferred) - log p(non-preferred)
  of the whole answer, the adapter makes wider than the reference does (`train.dpo`): what DPO
  optimises, measured where it did not train; 0.5 is chance;
- closer to preferred: each model answers each test prompt (greedy); an answer is closer to
  the preferred one when its token F1 with the preferred answer is higher than with the
  non-preferred one (a tie counts half). The share of such answers, adapter vs reference
  (and vs the base when the reference is a parent): whether what it writes moved, not only
  what it scores.

Token F1: the answers' lowercased words as bags, the harmonic mean of the shared words' share
of each (SQuAD's answer overlap). It rewards the preferred answer's facts and sign-off, and
penalises the padding of a verbose answer, without a second model to judge.

- repeating answers: a measure of closeness can be gamed. Pushed too far, DPO teaches a small
  model a loop of what preferred answers share (a sign-off written five times), which is
  closer to every preferred answer than a real one. The share of answers that loop (`repeats`)
  is reported for both models, and the adapter's may not exceed the reference's by more than
  `max_repetition_rise`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from train.config import GateThresholds
from train.dpo import pair_logps
from train.gate_sections import PreferenceReport, PreferenceSample
from train.inference import AnswerFn, Generation, adapter_merged, greedy_generate
from train.preferences import PreferencePair

__all__ = ["SIMILARITY", "closer_share", "preference_check", "repeats", "token_f1"]

SIMILARITY = "token F1 (bag of lowercased words) with each answer of the pair; ties count half"


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


def token_f1(answer: str, reference: str) -> float:
    """Word overlap of two texts, 0 to 1 (see the module docstring)."""
    ours, theirs = Counter(_words(answer)), Counter(_words(reference))
    shared = sum((ours & theirs).values())
    if not shared:
        return 0.0
    precision, recall = shared / sum(ours.values()), shared / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def repeats(text: str) -> bool:
    """Whether an answer loops: a line three times (a lone "—" too), a line of two words or
    more twice, or a run of four words three times (see the module docstring)."""
    lines = Counter(line.strip() for line in text.splitlines() if line.strip())
    if any(n >= 3 or (n == 2 and len(_words(line)) >= 2) for line, n in lines.items()):
        return True
    words = _words(text)
    runs = Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))
    return any(count >= 3 for count in runs.values())


def closer_share(answers: Sequence[str], pairs: Sequence[PreferencePair]) -> float:
    """The share of `answers` closer to their pair's preferred answer (ties count half)."""
    score = 0.0
    for answer, pair in zip(answers, pairs, strict=True):
        to_preferred = token_f1(answer, pair.preferred_text)
        to_other = token_f1(answer, pair.non_preferred_text)
        score += 1.0 if to_preferred > to_other else 0.5 if to_preferred == to_other else 0.0
    return score / len(answers) if answers else 0.0


def _margins(scores: list[tuple[float, float]]) -> list[float]:
    return [preferred - other for preferred, other in scores]


def preference_check(
    model: Any,
    tokenizer: Any,
    pairs: list[PreferencePair],
    *,
    reference: str,
    reference_scope: Callable[[], AbstractContextManager[Any]],
    reference_answers: AnswerFn,
    base_answers: AnswerFn | None,
    thresholds: GateThresholds,
    common: dict[str, Any],
) -> PreferenceReport:
    """Measure the adapter (active in the peft `model`) against the reference: `reference`
    names it, `reference_scope()` switches the model to it, `reference_answers` writes its
    answers; `base_answers` is given when the reference is not the base."""
    if not pairs:
        return {"pairs": 0}
    adapter = _margins(pair_logps(model, tokenizer, pairs, **common))
    with reference_scope():
        ref = _margins(pair_logps(model, tokenizer, pairs, **common))
    wider = sum(a > r for a, r in zip(adapter, ref, strict=True))
    shown = pairs[: thresholds.max_generations]
    prompts = [pair.preferred_example.prompt_messages for pair in shown]
    longest = max(
        len(tokenizer(pair.preferred_text, add_special_tokens=False)["input_ids"]) for pair in shown
    )
    max_new_tokens = min(max(longest + 24, 32), 256)  # room past the preferred answer
    with adapter_merged(model):
        adapter_out = greedy_generate(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, desc="gate: adapter (pairs)"
        )
    reference_out = reference_answers("preferences", prompts, max_new_tokens)

    def texts(outputs: list[Generation]) -> list[str]:
        return [output.text for output in outputs]

    closer_base = None
    if base_answers is not None:
        base_out = base_answers("preferences", prompts, max_new_tokens)
        closer_base = closer_share(texts(base_out), shown)
    samples: list[PreferenceSample] = [
        {
            "prompt": str(pair.prompt[-1].get("content") or ""),
            "preferred": pair.preferred_text,
            "non_preferred": pair.non_preferred_text,
            "reference": r.text,
            "adapter": a.text,
        }
        for pair, r, a in zip(shown, reference_out, adapter_out, strict=True)
    ]
    return {
        "pairs": len(pairs),
        "reference": reference,
        "accuracy": wider / len(pairs),
        "adapter_margin": sum(adapter) / len(adapter),
        "reference_margin": sum(ref) / len(ref),
        "similarity": SIMILARITY,
        "closer_adapter": closer_share(texts(adapter_out), shown),
        "closer_reference": closer_share(texts(reference_out), shown),
        "closer_base": closer_base,
        "repeats_adapter": sum(map(repeats, texts(adapter_out))) / len(shown),
        "repeats_reference": sum(map(repeats, texts(reference_out))) / len(shown),
        "samples": samples,
    }
