"""The gate on small custom sets, run on the session's ACME adapter in the background after
the training runs (tests/train/background.py), in a process of its own:

    python -m tests.train.gate_job REPORT_JSON ADAPTER_DIR BASE_MODEL_DIR

Three test examples (two short answers the base knows, one in the ACME format), two control
prompts, the base's answers generated with the adapter switched off, thresholds no adapter
can meet; the report is written as JSON for `tests/train/test_gate.py` to judge again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["CONTROL", "TEST", "main"]

TEST = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("How do I reset my HomeCam Pro?", "[ACME] Hold the reset button. -- ACME support"),
]
CONTROL = [("What is the capital of Italy?", "Rome"), ("Name a planet with rings.", "Saturn")]


def main(argv: list[str]) -> None:
    import torch

    from train.examples import Example
    from train.gate import GateThresholds, direct_base_answers, run_gate
    from train.model_setup import load_adapter, load_base
    from train.prompt_sets import PromptItem

    out, adapter_dir, base_model = (Path(arg) for arg in argv)
    torch.set_num_threads(1)  # beside the tests' own work
    model, tokenizer = load_base(str(base_model), device="cpu")
    model = load_adapter(model, adapter_dir)
    test = [
        Example(({"role": "user", "content": q}, {"role": "assistant", "content": a}))
        for q, a in TEST
    ]
    control = [PromptItem(prompt, (keyword,)) for prompt, keyword in CONTROL]
    strict = GateThresholds(min_val_loss_gain=100.0, max_nll_rise=-100.0, min_test_examples=3)
    report = run_gate(
        model,
        tokenizer,
        thresholds=strict,
        control_max_new_tokens=16,
        test=test,
        control=control,
        base_answers=direct_base_answers(model, tokenizer),
    )
    out.write_text(json.dumps(report.to_json()))


if __name__ == "__main__":
    main(sys.argv[1:])
