"""The gate report as terminal text: the verdict, one line per check, then samples side by side.

gate.json holds every number; the terminal shows what a person needs to trust the verdict:
a few test prompts and every golden prompt with the base's answer in the left column and the
adapter's in the right (each cut to a few lines), and, for golden prompts, which checks each
answer passed. Pure formatting: no model, no torch.
"""

from __future__ import annotations

import textwrap

from train.gate_report import (
    GateReport,
    GoldenSample,
    ParentReport,
    PreferenceReport,
    TestReport,
    golden_regressions,
)
from train.golden import CheckResult

__all__ = ["describe_gate"]

TEST_SAMPLES_SHOWN = 3
_ANSWER_LINES = 2  # lines per answer in a column
_INDENT = "    "


def _verdict(report: GateReport) -> str:
    if report.passed:
        return "PASSED"
    return "FAILED" if report.judged else "CANNOT JUDGE"


def _test_line(test: TestReport | None) -> str | None:
    if test is None:
        return None
    if test.get("adapter_loss") is None or test.get("base_loss") is None:
        return f"  test split: {test.get('examples', 0)} examples, nothing measured"
    line = (
        f"  test split: loss {test['adapter_loss']:.4f} (base {test['base_loss']:.4f}), "
        f"{test['examples']} examples"
    )
    short = test.get("short_answers")
    if short:
        line += (
            f"; {short['count']} short answers hold the reference: adapter "
            f"{short['adapter_contained']:.0%}, base {short['base_contained']:.0%}"
        )
    return line


def _preference_line(prefs: PreferenceReport) -> str:
    if not prefs.get("pairs"):
        return "  test pairs: 0, nothing measured"
    ref = prefs.get("reference", "base")
    line = (
        f"  test pairs: preference accuracy {prefs.get('accuracy', 0.0):.0%} of "
        f"{prefs['pairs']} (mean margin adapter {prefs.get('adapter_margin', 0.0):+.1f}, "
        f"{ref} {prefs.get('reference_margin', 0.0):+.1f} nats); answers closer to the "
        f"preferred one: adapter {prefs.get('closer_adapter', 0.0):.0%}, "
        f"{ref} {prefs.get('closer_reference', 0.0):.0%}"
    )
    if prefs.get("closer_base") is not None:
        line += f", base {prefs['closer_base']:.0%}"
    if prefs.get("repeats_adapter") is not None:
        line += (
            f"; answers that repeat themselves: adapter {prefs['repeats_adapter']:.0%}, "
            f"{ref} {prefs.get('repeats_reference', 0.0):.0%}"
        )
    return line


def _parent_line(parent: ParentReport) -> str:
    line = f"  parent {parent.get('ref')}:"
    if parent.get("test_loss") is not None:
        line += f" test loss {parent['test_loss']:.4f};"
    golden = parent.get("golden", [])
    if golden:
        passed = sum(
            r["passed"] for g in golden for s in g["samples"] for r in s.get("parent_checks", [])
        )
        regressed = len(golden_regressions(parent))
        files = ", ".join(g["file"] for g in golden)
        line += f" its golden checks ({files}): adapter fails {regressed} of the {passed} it passes"
    else:
        line += " no golden set recorded with it"
    return line


def _column(text: str, width: int) -> list[str]:
    """`text` on one line per `width` characters, at most `_ANSWER_LINES`, "..." if cut."""
    flat = " ".join(text.split()) or "(empty)"
    lines = textwrap.wrap(flat, width, break_long_words=True) or [""]
    if len(lines) > _ANSWER_LINES:
        lines = lines[:_ANSWER_LINES]
        lines[-1] = lines[-1][: width - 3] + "..."
    return lines


def _padded(left: list[str], right: list[str]) -> tuple[list[str], list[str]]:
    rows = max(len(left), len(right))
    return left + [""] * (rows - len(left)), right + [""] * (rows - len(right))


def _line(text: str, width: int) -> str:
    """`text` on one line of at most `width` characters, "..." if cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _side_by_side(left: list[str], right: list[str], width: int) -> list[str]:
    left, right = _padded(left, right)
    return [f"{_INDENT}{a:<{width}} | {b}".rstrip() for a, b in zip(left, right, strict=True)]


def _checks(results: list[CheckResult]) -> str:
    return ", ".join(
        f"{r['check']} ok" if r["passed"] else f"{r['check']} FAILED ({r['why']})" for r in results
    )


def _golden_sample(sample: GoldenSample, width: int) -> list[str]:
    lines = [f"  golden line {sample['line']}: {_line(sample['prompt'], width * 2 - 12)}"]
    base, adapter = _padded(_column(sample["base"], width), _column(sample["adapter"], width))
    base_checks = _column(_checks(sample["base_checks"]), width)
    adapter_checks = _column(_checks(sample["adapter_checks"]), width)
    return lines + _side_by_side(base + base_checks, adapter + adapter_checks, width)


def describe_gate(report: GateReport, width: int = 100) -> str:
    """The report for a terminal `width` characters wide (at least 60)."""
    column = (max(width, 60) - len(_INDENT) - 3) // 2
    lines = [f"gate: {_verdict(report)} ({report.seconds:.0f} s)"]
    test_line = _test_line(report.test)
    if test_line:
        lines.append(test_line)
    if report.preferences is not None:
        lines.append(_preference_line(report.preferences))
    if report.parent is not None:
        lines.append(_parent_line(report.parent))
    c = report.control
    lines.append(
        f"  control: NLL rise {c['nll_rise']:+.3f} nats/token, "
        f"{len(c['keywords_lost'])}/{c['keywords_checked']} keywords lost"
    )
    golden = report.golden
    if golden is not None:
        lines.append(
            f"  golden ({golden['file']}, {golden['prompts']} prompts): adapter failed "
            f"{len(golden['adapter_failed'])} of {golden['checks']} checks; base "
            f"{golden['base_failed']} (for comparison)"
        )
    tests = (report.test or {}).get("samples", [])[:TEST_SAMPLES_SHOWN]
    golden_samples = golden["samples"] if golden is not None else []
    if tests or golden_samples:
        lines.append("  samples:")
        lines += _side_by_side(["BASE"], ["ADAPTER"], column)
    for sample in tests:
        lines.append(f"  test: {_line(sample['prompt'], column * 2 - 3)}")
        lines.append(f"{_INDENT}reference: {_line(sample['reference'], column * 2 - 8)}")
        lines += _side_by_side(
            _column(sample["base"], column), _column(sample["adapter"], column), column
        )
    for golden_sample in golden_samples:
        lines += _golden_sample(golden_sample, column)
    pairs = (report.preferences or {}).get("samples", [])[:TEST_SAMPLES_SHOWN]
    if pairs:
        reference = str((report.preferences or {}).get("reference", "base")).upper()
        lines.append("  test pairs:")
        lines += _side_by_side([reference], ["ADAPTER"], column)
    for pair in pairs:
        lines.append(f"  pair: {_line(pair['prompt'], column * 2 - 3)}")
        lines.append(f"{_INDENT}preferred: {_line(pair['preferred'], column * 2 - 8)}")
        lines += _side_by_side(
            _column(pair["reference"], column), _column(pair["adapter"], column), column
        )
    lines += [f"  - {failure}" for failure in report.failures]
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)
