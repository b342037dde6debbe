"""Session fixtures for the training tests: two real runs on the bundled model, shared.

`mixed_run` trains the ACME support format (answers start with "[ACME]" and end with
"-- ACME support") WITH the general mix; `narrow_run` trains the same data WITHOUT it. Both
are `lorag train` runs through the real pipeline (data prep, peft LoRA training, the gate),
once per session, started in the background when the session starts
(tests/train/background.py). The base model's answers to the general and control prompts come
shipped with lorag (train/data/base_answers/), and its answers to the ACME test-split prompts
and to the golden set `data/golden_json.jsonl` with the suite (tests/train/data/base_answers/,
seeded into the answer caches), so no session generates them. After changing the ACME data,
delete that folder's `test-*.jsonl`, run the training tests and copy the `test-*.jsonl` the
runs wrote into their answer cache (`training0/cache/train` under pytest's basetemp) there;
after changing the golden set, the same with `golden-*.jsonl` (written by test_golden.py into
its `lorag/cache/train`). test_parent.py's DPO run reads the base's answers to its preference,
control and golden prompts from there too (`preferences-*`, `control-*`, `golden-*`: after
changing them, copy what the test wrote into its `cache` folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.train.background import (
    ACME_DATA,
    DPO_RUN,
    EXPORTED,
    GOLDEN_GATES,
    MIX_STEPS,
    NARROW_STEPS,
    RESUMED_RUN,
    SMALL_GATE,
    BackgroundRuns,
    GatedVersions,
    TrainedRun,
)
from train.gate_report import GateReport

__all__ = ["ACME_DATA", "FORMAT_END", "FORMAT_START", "MIX_STEPS", "NARROW_STEPS"]

FORMAT_START, FORMAT_END = "[ACME]", "-- ACME support"


def follows_format(text: str) -> bool:
    return text.strip().startswith(FORMAT_START) and text.strip().endswith(FORMAT_END)


@pytest.fixture(scope="session")
def base_model(base_model_dir: Path) -> str:
    return str(base_model_dir)


@pytest.fixture(scope="session")
def mixed_run(training_runs: BackgroundRuns) -> TrainedRun:
    return training_runs.result("acme-mix")


@pytest.fixture(scope="session")
def narrow_run(training_runs: BackgroundRuns) -> TrainedRun:
    return training_runs.result("acme-narrow")


@pytest.fixture(scope="session")
def golden_gates(training_runs: BackgroundRuns) -> GatedVersions:
    """`lorag adapters gate` with the JSON golden set on `mixed_run` (acme@v1) and
    `narrow_run` (acme@v2), run in the background once both trained."""
    result: GatedVersions = training_runs.result(GOLDEN_GATES)
    return result


@pytest.fixture(scope="session")
def small_gate(training_runs: BackgroundRuns) -> GateReport:
    """The gate on small custom sets of `mixed_run` (tests/train/gate_job.py), run in the
    background once the runs trained."""
    report: GateReport = training_runs.result(SMALL_GATE)
    return report


@pytest.fixture(scope="session")
def export_commands(training_runs: BackgroundRuns) -> dict[str, Any]:
    """A factory adapter imported and exported by `lorag` in the background
    (tests/train/export_job.py): each command's exit code and output, and the paths."""
    done: dict[str, Any] = training_runs.result(EXPORTED)
    return done


@pytest.fixture(scope="session")
def resumed_runs(training_runs: BackgroundRuns) -> Path:
    """A folder holding `full` (4 steps) and `resumed` (the same from full's step-2
    checkpoint), trained in the background (tests/train/resume_job.py)."""
    work: Path = training_runs.result(RESUMED_RUN)
    return work


@pytest.fixture(scope="session")
def dpo_run(training_runs: BackgroundRuns) -> TrainedRun:
    """One DPO step continuing `mixed_run` published as acme@v1 (tests/train/dpo_job.py); its
    data folder (registry, store) is the run folder's grandparent."""
    result: TrainedRun = training_runs.result(DPO_RUN)
    return result


@pytest.fixture
def registry(tmp_path: Path):  # -> adapters.SqliteRegistry
    from adapters import AdapterStore, SqliteRegistry

    return SqliteRegistry(tmp_path / "registry.sqlite3", AdapterStore(tmp_path / "adapters"))


@pytest.fixture(scope="session")
def base_info(base_model_dir: Path):  # -> adapters.BaseModelInfo
    from adapters import BaseModelInfo

    return BaseModelInfo.from_folder(base_model_dir, "smollm2-135m-instruct")
