"""The session's real training work, done in the background: two SFT runs by `lorag train`,
then what needs them - `lorag adapters gate` with a golden set on both, the gate on small
custom sets (tests/train/gate_job.py), a DPO run continuing the first once it is published
(tests/train/dpo_job.py) - and a short run stopped and resumed (tests/train/resume_job.py);
first of all, a factory adapter's export (tests/train/export_job.py).

They are started when the session starts (tests/conftest.py) and run while the gateway tests
do: those wait on a single vLLM stream most of the time, which leaves a core idle. The jobs go
one after the other, with one thread each, at a lower priority (nice 10) so the tests in the
foreground keep their speed; the training tests then wait only for what is left.

Each run is `lorag train --no-publish` exactly as a user types it (data checks, the general
mix, peft LoRA, the gate), in a data folder of its own whose answer cache holds the base
model's shipped answers to the ACME test-split prompts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.gate import GateReport

__all__ = [
    "ACME_DATA",
    "DPO_RUN",
    "EXPORTED",
    "GOLDEN_GATES",
    "GOLDEN_JSON",
    "HELDOUT_ANSWERS",
    "MIX_STEPS",
    "NARROW_STEPS",
    "RESUMED_RUN",
    "RUNS",
    "SMALL_GATE",
    "BackgroundRuns",
    "GatedVersions",
    "TrainedRun",
]

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ACME_DATA = DATA / "acme_support.jsonl"
HELDOUT_ANSWERS = DATA / "base_answers"
# measured (48 train examples, 6 validation, 6 test; bf16 and fp32 training alike):
MIX_STEPS = 14  # 6 of 6 test answers in format, control NLL rise 0.09, no keyword lost: passes
NARROW_STEPS = 10  # 6 of 6 in format, control NLL rise 0.39-0.45, 2 keywords lost: fails
_COMMON = ["--lr", "1e-3", "--batch-size", "8", "--seed", "0", "--threads", "1"]
RUNS: dict[str, list[str]] = {
    "acme-mix": ["--max-steps", str(MIX_STEPS)],
    "acme-narrow": ["--max-steps", str(NARROW_STEPS), "--no-general-mix"],
}
"""Run name -> its own options, in the order they train (the mixed run is needed first)."""
GOLDEN_GATES = "acme-gates"
"""After them: both runs imported as acme@v1 (mixed) and acme@v2 (narrow) into a data folder
of their own and gated by `lorag adapters gate` with GOLDEN_JSON (tests/train/test_golden.py)."""
GOLDEN_JSON = DATA / "golden_json.jsonl"
SMALL_GATE = "acme-small-gate"
"""Then: the gate on small custom sets of acme-mix (tests/train/gate_job.py)."""
EXPORTED = "export"
"""First of all (it needs no training): a factory adapter exported (tests/train/export_job.py)."""
RESUMED_RUN = "resume"
"""Last: training stopped after step 2 and resumed (tests/train/resume_job.py)."""
DPO_RUN = "acme-dpo"
"""Last: one DPO step continuing acme-mix published as acme@v1 (tests/train/dpo_job.py)."""


@dataclass(frozen=True)
class GatedVersions:
    """`lorag adapters gate` run on acme@v1 and acme@v2 of the data folder `data_dir`: each
    version's exit code and standard output."""

    data_dir: Path
    gated: dict[int, tuple[int, str]]


@dataclass(frozen=True)
class TrainedRun:
    """A finished run folder and the gate report the pipeline wrote into it."""

    run_dir: Path
    gate: GateReport


class BackgroundRuns:
    def __init__(self, base_model_dir: Path, work_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = work_dir
        self.env = {
            **env,
            "HF_HUB_OFFLINE": "1",
            "LORAG_DATA_DIR": str(work_dir),
            "LORAG_BASE_MODEL": str(base_model_dir),
        }
        names = [EXPORTED, *RUNS, GOLDEN_GATES, SMALL_GATE, DPO_RUN, RESUMED_RUN]
        self._done: dict[str, threading.Event] = {name: threading.Event() for name in names}
        self.base_model_dir = base_model_dir
        self._outcome: dict[str, Any] = {}  # a run's result, or why it failed (str)
        self._process: subprocess.Popen[str] | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._train_all, daemon=True)

    def start(self) -> None:
        cache = self.data_dir / "cache" / "train"
        cache.mkdir(parents=True, exist_ok=True)
        for answers in HELDOUT_ANSWERS.glob("*.jsonl"):
            shutil.copy(answers, cache)
        self._thread.start()

    def result(self, name: str, timeout_s: float = 1800.0) -> Any:
        """The finished run `name`, waiting for it; fails with the command's output tail."""
        if not self._done[name].wait(timeout_s):
            raise TimeoutError(f"training run {name} did not finish in {timeout_s:.0f} s")
        outcome = self._outcome[name]
        if isinstance(outcome, str):
            raise RuntimeError(f"training run {name} failed:\n{outcome}")
        return outcome

    def stop(self) -> None:
        self._stopped = True
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)
        self._thread.join(timeout=30)

    def _train_all(self) -> None:
        self._finish(EXPORTED, self._export)
        for name, options in RUNS.items():
            command = [sys.executable, "-m", "cli", "train", "--quiet", "--data", str(ACME_DATA)]
            command += ["--name", name, "--no-publish", *_COMMON, *options]
            self._finish(name, lambda n=name, c=command: self._run(n, c, self.data_dir))
        self._finish(GOLDEN_GATES, self._gate_with_golden)
        self._finish(SMALL_GATE, self._gate_small_sets)
        self._finish(DPO_RUN, self._continue_by_dpo)
        self._finish(RESUMED_RUN, self._stop_and_resume)

    def _finish(self, name: str, run: Callable[[], object]) -> None:
        started = time.monotonic()
        try:
            self._outcome[name] = run()
        except Exception as error:  # reported by result(), in the test that needs it
            self._outcome[name] = f"{type(error).__name__}: {error}"
        finally:
            self._done[name].set()
        print(f"\n[background] {name}: {time.monotonic() - started:.0f} s", flush=True)

    def _gate_with_golden(self) -> GatedVersions:
        runs = [self._outcome.get(name) for name in RUNS]
        if not all(isinstance(run, TrainedRun) for run in runs):
            raise RuntimeError(f"the runs to gate did not train: {runs}")
        work = self.data_dir / "gates"
        cache = work / "cache" / "train"  # the base's answers to GOLDEN_JSON ship with the suite
        cache.mkdir(parents=True)
        for answers in HELDOUT_ANSWERS.glob("golden-*.jsonl"):
            shutil.copy(answers, cache)
        env = {**self.env, "LORAG_DATA_DIR": str(work)}
        for run in runs:  # acme@v1 keeps the format, acme@v2 breaks it
            adapter = str(run.run_dir / "adapter")
            self._command(["adapters", "import", adapter, "--name", "acme"], env, check=True)
        control = work / "control.jsonl"
        control.write_text('{"prompt": "What is the capital of France?", "expect": "Paris"}\n')
        # lenient control (one prompt, no limits): the verdict is the golden one
        options = ["--golden", str(GOLDEN_JSON), "--control", str(control), "--threads", "1"]
        options += ["--max-nll-rise", "100", "--max-keywords-lost", "100"]
        gated = {
            version: self._command(["adapters", "gate", f"acme@v{version}", *options], env)
            for version in (1, 2)
        }
        return GatedVersions(work, gated)

    def _gate_small_sets(self) -> GateReport:
        parent = self._parent()
        out = self.data_dir / "small-gate.json"
        argv = [str(out), str(parent.run_dir / "adapter"), str(self.base_model_dir)]
        self._command(argv, self.env, check=True, module="tests.train.gate_job")
        return GateReport.from_json(json.loads(out.read_text()))

    def _export(self) -> dict[str, Any]:
        work = self.data_dir / "export"
        argv = [str(work), str(self.base_model_dir)]
        self._command(argv, self.env, check=True, module="tests.train.export_job")
        done: dict[str, Any] = json.loads((work / "commands.json").read_text())
        return done

    def _stop_and_resume(self) -> Path:
        work = self.data_dir / "resume"
        argv = [str(work), str(self.base_model_dir)]
        self._command(argv, self.env, check=True, module="tests.train.resume_job")
        return work

    def _parent(self) -> TrainedRun:
        parent = self._outcome.get("acme-mix")
        if not isinstance(parent, TrainedRun):
            raise RuntimeError(f"acme-mix did not train: {parent}")
        return parent

    def _command(
        self, argv: list[str], env: dict[str, str], *, check: bool = False, module: str = "cli"
    ) -> tuple[int, str]:
        """`python -m MODULE ARGV` (`lorag ARGV`): its exit code and standard output."""
        if self._stopped:
            raise RuntimeError("the session ended first")
        self._process = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", module, *argv],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        output, errors = self._process.communicate()
        if check and self._process.returncode != 0:
            code = self._process.returncode
            raise RuntimeError(f"{module} {' '.join(argv)}: exit {code}\n{errors[-4000:]}")
        return self._process.returncode, output

    def _continue_by_dpo(self) -> TrainedRun:
        parent = self._parent()
        work = self.data_dir / "dpo"
        work.mkdir()
        command = [sys.executable, "-m", "tests.train.dpo_job", str(work)]
        command += [str(parent.run_dir / "adapter"), str(self.base_model_dir)]
        return self._run(DPO_RUN, command, work)

    def _run(self, name: str, command: list[str], data_dir: Path) -> TrainedRun:
        if self._stopped:
            raise RuntimeError("the session ended first")
        self._process = subprocess.Popen(
            ["nice", "-n", "10", *command],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output, _ = self._process.communicate()
        # the gate decides the exit code (1: failed); the run folder holds what the test checks
        if self._process.returncode not in (0, 1):
            raise RuntimeError(f"exit {self._process.returncode}\n{output[-4000:]}")
        run_dirs = sorted((data_dir / "runs").glob(f"{name}-*"))
        gate_json = run_dirs[-1] / "gate.json" if run_dirs else None
        if gate_json is None or not gate_json.is_file():
            raise RuntimeError(f"no gate.json written\n{output[-4000:]}")
        return TrainedRun(run_dirs[-1], GateReport.from_json(json.loads(gate_json.read_text())))
