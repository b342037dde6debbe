"""The gate's checks on a real adapter (the session's ACME run) with small custom sets."""

from __future__ import annotations

from dataclasses import replace

from tests.train.gate_job import CONTROL
from train.gate import GateReport, GateThresholds, normalize_answer
from train.prompt_sets import PromptItem


def test_short_answers_keywords_and_thresholds(small_gate: GateReport) -> None:
    """The gate on small custom sets (tests/train/gate_job.py, run in the background on the
    session's ACME adapter), with thresholds no adapter meets, then judged again."""
    report = small_gate

    short = report.test["short_answers"]
    assert short["count"] == 3  # all three references have <= 12 words
    assert short["base_contained"] == 2 / 3  # the base names Paris and Tokyo, not the format
    assert short["base_exact"] == 0.0
    assert len(report.test["samples"]) == 3
    assert report.control["prompts"] == 2
    assert report.control["keywords_checked"] == sum(
        PromptItem(prompt, (keyword,)).found_in(sample["base"])
        for (prompt, keyword), sample in zip(CONTROL, report.control["samples"], strict=True)
    )
    assert not report.passed
    assert any(f.startswith("test loss did not improve") for f in report.failures)
    assert any(f.startswith("control NLL") for f in report.failures)

    lenient = GateThresholds(
        max_nll_rise=100.0, max_match_drop=1.0, min_val_loss_gain=-100.0, min_test_examples=3
    )
    rejudged = report.rejudged(lenient)
    assert rejudged.passed, rejudged.failures
    assert rejudged.test == report.test and rejudged.control == report.control
    assert rejudged.thresholds["max_nll_rise"] == 100.0 and not report.passed

    too_few = report.rejudged(replace(lenient, min_test_examples=5))  # the default
    assert not too_few.passed and not too_few.judged
    assert too_few.failures == [
        "only 3 test example(s) (minimum 5): the gate cannot judge this adapter; add examples "
        "(or raise --test-fraction) or publish with --force"
    ]


def test_normalize_answer() -> None:
    assert normalize_answer("  The capital is PARIS!  ") == "the capital is paris"
    assert normalize_answer("[ACME] ok -- ACME") == "acme ok acme"
