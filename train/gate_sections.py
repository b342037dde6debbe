"""The sections of a gate report (`train.gate_report.GateReport`), as plain JSON objects.

Each is a TypedDict: what gate.json holds, the registry's metrics copy, and `train.gate`
fills. No behaviour here; judging them is `train.gate_report`'s.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from train.golden import CheckResult

__all__ = [
    "ControlReport",
    "ControlSample",
    "GoldenReport",
    "GoldenSample",
    "ParentReport",
    "PreferenceReport",
    "PreferenceSample",
    "ShortAnswers",
    "TestReport",
    "TestSample",
]


class ShortAnswers(TypedDict):
    """Test answers of a few words: how often each model's answer holds the reference."""

    count: int
    base_contained: float
    adapter_contained: float
    base_exact: float
    adapter_exact: float


class TestSample(TypedDict):
    prompt: str
    reference: str
    base: str
    adapter: str


class TestReport(TypedDict, total=False):
    """The test-split check (only `examples` when there were too few to measure)."""

    examples: int
    base_loss: float | None
    adapter_loss: float | None
    short_answers: ShortAnswers
    samples: list[TestSample]


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


class GoldenSample(TypedDict):
    line: int
    prompt: str
    base: str
    adapter: str
    base_checks: list[CheckResult]
    adapter_checks: list[CheckResult]
    parent: NotRequired[str]  # `--from`: the parent's answer and its checks
    parent_checks: NotRequired[list[CheckResult]]


class GoldenReport(TypedDict):
    """The user's golden checks: enforced on the adapter; the base's results are for reading.
    (A parent's golden set: only the checks the parent passes are enforced, `ParentReport`.)"""

    file: str
    prompts: int
    checks: int
    adapter_failed: list[str]  # "line N: check: why", one per failed check
    base_failed: int
    samples: list[GoldenSample]
    sha256: NotRequired[str]  # of `text`, the golden file as the gate read it
    text: NotRequired[str]


class ParentReport(TypedDict, total=False):
    """`--from`: the adapter beside the published version it continues."""

    ref: str  # "support@v3"
    test_loss: float | None  # the parent's loss on this run's test split (SFT runs)
    golden: list[GoldenReport]  # the parent's recorded golden sets, parent answers in samples


class PreferenceSample(TypedDict):
    prompt: str
    preferred: str
    non_preferred: str
    reference: str  # the reference's answer (the base's, or the parent's)
    adapter: str


class PreferenceReport(TypedDict, total=False):
    """A DPO run's test pairs. The margin of a pair is log p(preferred) - log p(non-preferred)
    of the whole answer; "closer" compares a greedy answer with both answers of its pair."""

    pairs: int
    reference: str  # what DPO held the adapter to: "base", or the --from version
    accuracy: float  # share of pairs whose margin the adapter widened over the reference's
    adapter_margin: float  # mean margins (nats)
    reference_margin: float
    similarity: str  # how "closer" is measured
    closer_adapter: float  # share of greedy answers closer to the preferred answer
    closer_reference: float
    closer_base: float | None  # when the reference is not the base
    repeats_adapter: float  # share of greedy answers that loop (`train.preference_gate`)
    repeats_reference: float
    samples: list[PreferenceSample]
