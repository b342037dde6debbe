"""DPO's pieces without a model: the loss on hand-computed cases, the "closer to the preferred
answer" measure, and how the gate judges and prints a DPO run's test pairs."""

from __future__ import annotations

import math

import pytest
import torch

from train.config import GateThresholds, TrainConfig
from train.dpo import dpo_loss
from train.errors import InvalidOption
from train.gate_report import ControlReport, GateReport, PreferenceReport
from train.gate_text import describe_gate
from train.preference_gate import closer_share, repeats, token_f1
from train.preferences import PreferencePair


def test_the_dpo_loss_by_hand() -> None:
    # pair 1: the policy raised the preferred answer by 1 nat and lowered the other by 1 over
    # the reference: margin (−10 − −11) − (−12 − −11) = 2; with beta 0.5 the loss is
    # −log σ(1) = log(1 + e^−1). Pair 2 is the mirror image: margin −2, loss log(1 + e).
    # Pair 3 moved nothing: margin 0, loss log 2.
    policy_preferred = torch.tensor([-10.0, -12.0, -5.0])
    policy_other = torch.tensor([-12.0, -10.0, -7.0])
    reference_preferred = torch.tensor([-11.0, -11.0, -5.0])
    reference_other = torch.tensor([-11.0, -11.0, -7.0])
    losses, margins = dpo_loss(
        policy_preferred, policy_other, reference_preferred, reference_other, beta=0.5
    )
    assert margins.tolist() == [2.0, -2.0, 0.0]
    expected = [math.log1p(math.exp(-1)), math.log1p(math.e), math.log(2)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)


def test_the_dpo_loss_gradient_pulls_the_preferred_answer_up() -> None:
    preferred = torch.tensor([-10.0], requires_grad=True)
    other = torch.tensor([-10.0], requires_grad=True)
    losses, _ = dpo_loss(preferred, other, torch.tensor([-10.0]), torch.tensor([-10.0]), 0.1)
    losses.sum().backward()
    # d/dx −log σ(β(x − y)) at x = y: −β/2 for the preferred, +β/2 for the other
    assert preferred.grad.item() == pytest.approx(-0.05)
    assert other.grad.item() == pytest.approx(0.05)


def test_dpo_options_are_checked() -> None:
    assert TrainConfig(method="dpo", beta=0.5).beta == 0.5
    for bad in ({"method": "ppo"}, {"beta": 0.0}, {"sft_weight": -1.0}):
        with pytest.raises(InvalidOption):
            TrainConfig(**bad)


def _pair(preferred: str, other: str) -> PreferencePair:
    return PreferencePair(
        ({"role": "user", "content": "Where is my order?"},),
        {"role": "assistant", "content": preferred},
        {"role": "assistant", "content": other},
    )


def test_closer_to_the_preferred_answer_by_token_f1() -> None:
    assert token_f1("The Order, shipped!", "order shipped") == pytest.approx(0.8)
    assert token_f1("", "anything") == 0.0
    pairs = [
        _pair("Could you send me your order number? — Support", "It is lost, stop asking."),
        _pair("It ships tomorrow. — Support", "Thank you so much for reaching out, it ships."),
        _pair("Yes. — Support", "No."),
    ]
    answers = [
        "Could you send your order number?",  # closer to the preferred one
        "Thank you so much for reaching out to us!",  # closer to the other
        "Maybe.",  # shares nothing with either: a tie, half
    ]
    assert closer_share(answers, pairs) == pytest.approx(1.5 / 3)


def test_looping_answers_are_recognised() -> None:
    # what the bundled model wrote after too much DPO on examples/preferences
    assert repeats("I'm here to help.\n\n— Larkspur Support\n\n— Larkspur Support")
    assert repeats("I'm here to help.\n\n—\n\n—\n\n—")
    assert repeats("* Support\n* Custom\n* Support\n* Support")
    assert repeats("Call us today, call us today, call us today, call us today.")
    assert not repeats("Which order number?\n\n— Larkspur Support")
    assert not repeats("1. Open the app.\n2. Open the menu.\n3. Tap Reset.\n\n---\n\n---")


CONTROL: ControlReport = {
    "prompts": 1,
    "keywords_checked": 0,
    "keywords_lost": [],
    "base_nll": 1.0,
    "adapter_nll": 1.1,
    "nll_rise": 0.1,
    "samples": [],
}


def _dpo_report(
    pairs: int, accuracy: float, closer: float, reference: float, loops: float = 0.0
) -> GateReport:
    prefs: PreferenceReport = {
        "pairs": pairs,
        "reference": "base",
        "accuracy": accuracy,
        "adapter_margin": 12.5,
        "reference_margin": 3.25,
        "similarity": "token F1",
        "closer_adapter": closer,
        "closer_reference": reference,
        "closer_base": None,
        "repeats_adapter": loops,
        "repeats_reference": 0.0,
        "samples": [
            {
                "prompt": "Where is my order?",
                "preferred": "Which order number? — Support",
                "non_preferred": "Lost.",
                "reference": "I am an AI and cannot track orders.",
                "adapter": "Which order number? — Support",
            }
        ],
    }
    measured = GateReport(
        passed=False,
        failures=[],
        test=None,
        control=CONTROL,
        thresholds=GateThresholds().to_json(),
        preferences=prefs,
    )
    return measured.rejudged(GateThresholds())


def test_the_gate_judges_a_dpo_run_on_its_test_pairs() -> None:
    good = _dpo_report(18, accuracy=0.9, closer=0.8, reference=0.3)
    assert good.passed and good.judged
    summary = good.record("train:x")["summary"]
    assert summary["preference_accuracy"] == 0.9 and summary["closer_adapter"] == 0.8
    assert GateReport.from_json(good.to_json()) == good

    chance = _dpo_report(18, accuracy=0.5, closer=0.2, reference=0.3)
    assert not chance.passed and chance.judged
    assert chance.failures == [
        "preference accuracy 50% of 18 test pairs (the adapter widens the margin of the "
        "preferred answer over the base's); minimum 60%",
        "answers closer to the preferred one: adapter 20%, base 30%",
    ]
    assert chance.rejudged(GateThresholds(min_preference_accuracy=0.5, max_closer_drop=0.1)).passed

    looping = _dpo_report(18, accuracy=1.0, closer=0.9, reference=0.2, loops=0.5)
    assert looping.failures == [
        "answers that repeat themselves: adapter 50%, base 0% (limit +10%): DPO went too far "
        "(lower --lr or fewer --epochs, raise --beta, or add --sft-weight)"
    ]

    too_few = _dpo_report(3, accuracy=1.0, closer=1.0, reference=0.0)
    assert not too_few.judged and too_few.failures[0].startswith(
        "only 3 test pair(s) (minimum 5): the gate cannot judge this adapter"
    )


def test_the_terminal_report_of_a_dpo_run() -> None:
    lines = describe_gate(_dpo_report(18, 0.9, 0.8, 0.3), width=100).splitlines()
    assert lines[0] == "gate: PASSED (0 s)"
    assert lines[1] == (
        "  test pairs: preference accuracy 90% of 18 (mean margin adapter +12.5, base +3.2 "
        "nats); answers closer to the preferred one: adapter 80%, base 30%; answers that repeat "
        "themselves: adapter 0%, base 0%"
    )
    assert "  pair: Where is my order?" in lines
    assert "    preferred: Which order number? — Support" in lines
    row = next(line for line in lines if line.startswith("    I am an AI"))
    assert row.split(" | ")[1] == "Which order number? — Support"
