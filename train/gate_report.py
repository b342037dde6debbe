"""What the gate measured, and its verdict: the `GateReport` (gate.json) and how it is judged.

Measuring runs models (`train.gate`); judging does not: `gate_failures` compares the
measurements with a `GateThresholds`, so a saved report can be judged again against other
limits, and publishing or the registry can read it without torch.

Three outcomes: passed; failed (the failures say why); and "cannot judge": the test split is
smaller than `min_test_examples`, so its numbers say too little to let the adapter through
(`judged` False, not passed, one failure that says so). Publishing then needs `--force`, as
after a failure.

Two optional sections: `preferences` (a DPO run's test pairs, in place of `test`) and `parent`
(a run continued `--from` a published version: the adapter beside its parent as well as the
base). The registry's record of a verdict keeps the golden files' text (`golden_sets`): the
checks a child of this version must not regress on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from train.config import GateThresholds
from train.gate_sections import (
    ControlReport,
    ControlSample,
    GoldenReport,
    GoldenSample,
    ParentReport,
    PreferenceReport,
    PreferenceSample,
    ShortAnswers,
    TestReport,
    TestSample,
)

__all__ = [
    "ControlReport",
    "ControlSample",
    "GateReport",
    "GoldenReport",
    "GoldenSample",
    "ParentReport",
    "PreferenceReport",
    "PreferenceSample",
    "ShortAnswers",
    "TestReport",
    "TestSample",
    "gate_failures",
    "golden_regressions",
]


@dataclass
class GateReport:
    """The gate's verdict and measurements; the sections are plain JSON objects (TypedDicts),
    as stored in a run's `gate.json`. `test` None: the gate had no test set (`lorag adapters
    gate` without `--test`); `golden` None: no golden file."""

    passed: bool
    failures: list[str]
    test: TestReport | None
    control: ControlReport
    thresholds: dict[str, Any]
    golden: GoldenReport | None = None
    judged: bool = True  # False: too few test examples to judge (see the module docstring)
    preferences: PreferenceReport | None = None  # a DPO run's test pairs (then `test` is None)
    parent: ParentReport | None = None  # `--from`: the comparison with the parent version
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # digests of what was gated

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateReport:
        """A saved report. One written before the test split (its `held_out` section measured
        the validation split, which also chose the checkpoint) is read with that section as
        `test` and judged False: it cannot stand for a test; gating the run again replaces it
        (its inputs differ from any new gate's, so nothing of it is reused)."""
        if "held_out" in data:
            data = {k: v for k, v in data.items() if k != "held_out"}
            data |= {"test": None, "judged": False, "passed": False}
            data["failures"] = ["made before lorag had a test split: gate the run again"]
        return cls(**data)

    def rejudged(self, thresholds: GateThresholds) -> GateReport:
        """The same measurements judged against other pass/fail thresholds (no model runs).
        `short_answer_words` and `max_generations` shape what was measured: they stay."""
        failures, judged = gate_failures(
            self.test,
            self.control,
            self.golden,
            thresholds,
            preferences=self.preferences,
            parent=self.parent,
        )
        kept = {"short_answer_words", "max_generations"}
        limits = {**thresholds.to_json(), **{k: self.thresholds[k] for k in kept}}
        return replace(
            self, passed=not failures, failures=failures, judged=judged, thresholds=limits
        )

    def summary(self) -> dict[str, Any]:
        """The headline numbers (the run card, the registry's metrics, the gate record)."""
        test = self.test or {}
        golden = self.golden
        return {
            "gate_passed": self.passed,
            "gate_judged": self.judged,
            "test_examples": test.get("examples"),
            "test_loss_base": test.get("base_loss"),
            "test_loss_adapter": test.get("adapter_loss"),
            "control_nll_rise": self.control.get("nll_rise"),
            "control_keywords_lost": len(self.control.get("keywords_lost", [])),
            "golden_checks": golden["checks"] if golden else None,
            "golden_failed": len(golden["adapter_failed"]) if golden else None,
            "golden_failed_base": golden["base_failed"] if golden else None,
            **self._more_summary(),
        }

    def _more_summary(self) -> dict[str, Any]:
        """The preference and parent numbers, only where the gate measured them."""
        more: dict[str, Any] = {}
        prefs = self.preferences
        if prefs is not None:
            more |= {
                "preference_pairs": prefs.get("pairs"),
                "preference_accuracy": prefs.get("accuracy"),
                "closer_adapter": prefs.get("closer_adapter"),
                "closer_reference": prefs.get("closer_reference"),
                "repeats_adapter": prefs.get("repeats_adapter"),
            }
        if self.parent is not None:
            more |= {
                "parent": self.parent.get("ref"),
                "test_loss_parent": self.parent.get("test_loss"),
                "golden_regressions": len(golden_regressions(self.parent)),
            }
        return more

    def golden_sets(self) -> list[dict[str, str]]:
        """The golden files this gate ran (the user's, then the parent's), each once:
        {"file", "sha256", "text"}. A child of this version must not regress on them."""
        reports = [self.golden] if self.golden is not None else []
        reports += (self.parent or {}).get("golden", [])
        sets: dict[str, dict[str, str]] = {}
        for report in reports:
            if "text" in report and "sha256" in report:
                sets.setdefault(
                    report["sha256"],
                    {"file": report["file"], "sha256": report["sha256"], "text": report["text"]},
                )
        return list(sets.values())

    def record(self, by: str) -> dict[str, Any]:
        """The verdict as the registry keeps it with the adapter version (`AdapterVersion.gate`):
        `by` is "train:<run id>" or "adapters gate"."""
        summary = {
            k: v for k, v in self.summary().items() if k not in ("gate_passed", "gate_judged")
        }
        record = {
            "passed": self.passed,
            "judged": self.judged,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": by,
            "failures": list(self.failures),
            "summary": summary,
        }
        golden_sets = self.golden_sets()
        if golden_sets:
            record["golden_sets"] = golden_sets
        return record


def _test_failures(test: TestReport, thresholds: GateThresholds) -> list[str]:
    failures = []
    base_loss, adapter_loss = test.get("base_loss"), test.get("adapter_loss")
    if (
        base_loss is not None
        and adapter_loss is not None
        and base_loss - adapter_loss < thresholds.min_val_loss_gain
    ):
        failures.append(
            f"test loss did not improve: adapter {adapter_loss:.4f} vs base {base_loss:.4f}"
        )
    short = test.get("short_answers")
    if short and short["adapter_contained"] < short["base_contained"] - thresholds.max_match_drop:
        failures.append(
            f"short test answers: adapter matches {short['adapter_contained']:.0%} of "
            f"references, base {short['base_contained']:.0%}"
        )
    return failures


def _preference_failures(prefs: PreferenceReport, thresholds: GateThresholds) -> list[str]:
    failures = []
    accuracy, pairs = prefs.get("accuracy", 0.0), prefs.get("pairs", 0)
    if accuracy < thresholds.min_preference_accuracy:
        failures.append(
            f"preference accuracy {accuracy:.0%} of {pairs} test pairs (the adapter widens the "
            f"margin of the preferred answer over the {prefs.get('reference')}'s); minimum "
            f"{thresholds.min_preference_accuracy:.0%}"
        )
    adapter, reference = prefs.get("closer_adapter"), prefs.get("closer_reference")
    if (
        adapter is not None
        and reference is not None
        and adapter < reference - thresholds.max_closer_drop
    ):
        failures.append(
            f"answers closer to the preferred one: adapter {adapter:.0%}, "
            f"{prefs.get('reference')} {reference:.0%}"
        )
    loops, loops_before = prefs.get("repeats_adapter"), prefs.get("repeats_reference")
    if (
        loops is not None
        and loops_before is not None
        and loops > loops_before + thresholds.max_repetition_rise
    ):
        failures.append(
            f"answers that repeat themselves: adapter {loops:.0%}, {prefs.get('reference')} "
            f"{loops_before:.0%} (limit +{thresholds.max_repetition_rise:.0%}): DPO went too "
            "far (lower --lr or fewer --epochs, raise --beta, or add --sft-weight)"
        )
    return failures


def golden_regressions(parent: ParentReport) -> list[str]:
    """`file line N: check: why` for each of the parent's golden checks that the parent
    passes and the adapter fails."""
    found = []
    for report in parent.get("golden", []):
        for sample in report["samples"]:
            before = {r["check"]: r["passed"] for r in sample.get("parent_checks", [])}
            for result in sample["adapter_checks"]:
                if before.get(result["check"]) and not result["passed"]:
                    found.append(
                        f"{report['file']} line {sample['line']}: {result['check']}: "
                        f"{result['why']}"
                    )
    return found


def _parent_failures(
    parent: ParentReport, test: TestReport | None, thresholds: GateThresholds
) -> list[str]:
    failures = []
    ref = parent.get("ref", "the parent")
    parent_loss = parent.get("test_loss")
    adapter_loss = (test or {}).get("adapter_loss")
    if (
        parent_loss is not None
        and adapter_loss is not None
        and parent_loss - adapter_loss < thresholds.min_val_loss_gain
    ):
        failures.append(
            f"test loss did not improve over the parent {ref}: adapter {adapter_loss:.4f} vs "
            f"parent {parent_loss:.4f}"
        )
    regressed = golden_regressions(parent)
    if len(regressed) > thresholds.max_golden_regressions:
        failures.append(
            f"golden checks the parent {ref} passes failed on the adapter ({len(regressed)}): "
            + "; ".join(regressed)
        )
    return failures


def _too_few(count: int, what: str, thresholds: GateThresholds) -> str:
    return (
        f"only {count} test {what}(s) (minimum {thresholds.min_test_examples}): the gate "
        "cannot judge this adapter; add examples (or raise --test-fraction) or publish with "
        "--force"
    )


def gate_failures(
    test: TestReport | None,
    control: ControlReport,
    golden: GoldenReport | None,
    thresholds: GateThresholds,
    *,
    preferences: PreferenceReport | None = None,
    parent: ParentReport | None = None,
) -> tuple[list[str], bool]:
    """What fails the gate, and whether it could judge at all (see the module docstring)."""
    failures, judged = [], True
    if test is not None:
        count = test.get("examples", 0)
        if count < thresholds.min_test_examples:
            judged = False
            failures.append(_too_few(count, "example", thresholds))
        else:
            failures += _test_failures(test, thresholds)
    if preferences is not None:
        count = preferences.get("pairs", 0)
        if count < thresholds.min_test_examples:
            judged = False
            failures.append(_too_few(count, "pair", thresholds))
        else:
            failures += _preference_failures(preferences, thresholds)
    if parent is not None:  # (a test split too small to judge is not compared either)
        failures += _parent_failures(parent, test if judged else None, thresholds)
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
    if golden is not None and len(golden["adapter_failed"]) > thresholds.max_golden_failures:
        failed = golden["adapter_failed"]
        failures.append(
            f"golden checks failed on the adapter ({len(failed)}): " + "; ".join(failed)
        )
    return failures, judged
