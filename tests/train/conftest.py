"""Session fixtures for the training tests: two real runs on the bundled model, shared.

`mixed_run` trains the ACME support format (answers start with "[ACME]" and end with
"-- ACME support") WITH the general mix; `narrow_run` trains the same data WITHOUT it. Both
go through the real pipeline (data prep, peft LoRA training, the gate) once per session.
The base model's answers to the general and control prompts come shipped with lorag
(train/data/base_answers/), and its answers to the ACME held-out prompts with the suite
(tests/train/data/base_answers/, seeded into the session's answer cache), so no session
generates them. After changing the ACME data, empty that folder, run the training tests and
copy the `heldout-*.jsonl` the session wrote into its answer cache (pytest's basetemp) there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from train.pipeline import DataOptions, JobResult, run_job
from train.trainer import TrainConfig

REPO = Path(__file__).resolve().parents[2]
ACME_DATA = Path(__file__).resolve().parent / "data" / "acme_support.jsonl"
HELDOUT_ANSWERS = Path(__file__).resolve().parent / "data" / "base_answers"
FORMAT_START, FORMAT_END = "[ACME]", "-- ACME support"
MIX_STEPS = 14  # measured: 5-6 of 6 held-out answers in format, control NLL rise ~0.09
NARROW_STEPS = 10  # measured: format learned, control NLL rise ~0.38, a keyword lost


def follows_format(text: str) -> bool:
    return text.strip().startswith(FORMAT_START) and text.strip().endswith(FORMAT_END)


@pytest.fixture(scope="session")
def base_model(base_model_dir: Path) -> str:
    return str(base_model_dir)


@pytest.fixture(scope="session")
def answer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("answer-cache")
    for answers in HELDOUT_ANSWERS.glob("*.jsonl"):
        shutil.copy(answers, cache)
    return cache


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _run(base_model: str, runs_dir: Path, cache: Path, *, mix: bool) -> JobResult:
    # both cores: the session's vLLM engine idles quietly beside training (its worker does not
    # spin), and precision is left to "auto" (fp32 on CPUs without native bf16)
    steps = MIX_STEPS if mix else NARROW_STEPS
    cfg = TrainConfig(max_steps=steps, threads=2, lr=1e-3, batch_size=8, seed=0)
    return run_job(
        cfg,
        base_model=base_model,
        runs_dir=runs_dir,
        cache_dir=cache,
        data=DataOptions(ACME_DATA, general_mix=mix),
        run_name="acme-mix" if mix else "acme-narrow",
        progress=False,
    )


@pytest.fixture(scope="session")
def mixed_run(base_model: str, runs_dir: Path, answer_cache: Path) -> JobResult:
    return _run(base_model, runs_dir, answer_cache, mix=True)


@pytest.fixture(scope="session")
def narrow_run(base_model: str, runs_dir: Path, answer_cache: Path) -> JobResult:
    return _run(base_model, runs_dir, answer_cache, mix=False)


@pytest.fixture
def registry(tmp_path: Path):  # -> adapters.SqliteRegistry
    from adapters import AdapterStore, SqliteRegistry

    return SqliteRegistry(tmp_path / "registry.sqlite3", AdapterStore(tmp_path / "adapters"))


@pytest.fixture(scope="session")
def base_info(base_model_dir: Path):  # -> adapters.BaseModelInfo
    from adapters import BaseModelInfo

    return BaseModelInfo.from_folder(base_model_dir, "smollm2-135m-instruct")
