"""One training job end to end: data -> run folder -> train -> gate -> publish.

    start_run     validate + scrub + dedupe + split the user's file (errors stop here, before
                  any run folder exists), mix in the base's own answers to general prompts,
                  create `runs_dir/<run_id>/` with data/train.jsonl, data/validation.jsonl
                  and data/test.jsonl (the gate's alone: the trainer never reads it)
    start_dpo_run the same for a preference file (`--method dpo`): pairs, no general mix
    train         `train.trainer.train`, or `train.dpo_trainer.train_dpo` (both resumable)
    gate_run      load base + the run's adapter, run the gate on the test split (or test
                  pairs), the control set and the golden set if given, write gate.json
    publish       `train.publish.publish_run` (refused on a failed gate unless forced)

A run continued `--from` a published version (`train.parent`) gets the parent's files in its
folder when it starts; training starts from its weights and the gate compares with it too.

`run_job` chains them; the CLI is a thin layer over it.
"""

from __future__ import annotations

import gc
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from train.adapter_gate import gate_adapter
from train.base_answers import base_fingerprint, cached_base_answers, general_mix_examples
from train.config import GateThresholds
from train.dataset import file_sha256, prepare_data
from train.dpo_trainer import train_dpo
from train.errors import InvalidOption, RunNotFound
from train.examples import Message, PreparedData, read_examples, write_examples
from train.gate_report import GateReport
from train.gate_text import describe_gate
from train.golden import load_golden
from train.inference import Generation, greedy_generate
from train.model_setup import load_base, pick_device, resolve_precision
from train.parent import (
    ParentVersion,
    parent_adapter_dir,
    parent_golden_files,
    read_parent,
    save_parent,
)
from train.preferences import PreparedPreferences, prepare_preferences, read_pairs, write_pairs
from train.prompt_sets import CONTROL_PROMPTS, GENERAL_PROMPTS, load_prompts
from train.run_card import update_run_card
from train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "DataOptions",
    "GateOptions",
    "JobResult",
    "describe_data",
    "describe_gate",
    "gate_run",
    "resume_config",
    "run_job",
    "start_dpo_run",
    "start_run",
]


@dataclass(frozen=True)
class DataOptions:
    data: Path
    data_format: str = "auto"
    prompt_column: str | None = None
    completion_column: str | None = None
    scrub: bool = True
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    general_mix: bool = True
    general_prompts: Path = GENERAL_PROMPTS
    general_ratio: float = 0.35  # at most this many general examples per user example...
    general_min: int = 8  # ...but at least this many (small datasets)
    general_max_new_tokens: int = 128


@dataclass(frozen=True)
class GateOptions:
    control: Path = CONTROL_PROMPTS
    golden: Path | None = None  # the user's golden set (train.golden)
    control_max_new_tokens: int = 48
    thresholds: GateThresholds = field(default_factory=GateThresholds)


@dataclass
class JobResult:
    run_dir: Path
    training: TrainResult
    gate: GateReport
    published: Any = None  # train.publish.PublishResult when published


def new_run_id(name: str | None) -> str:
    return f"{name or 'run'}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _base_generator(base_model: str, device: str, max_new_tokens: int) -> Any:
    """A lazy "answer these with the base model" function for the answer cache."""

    def generate(prompts: list[list[Message]]) -> list[Generation]:
        model, tokenizer = load_base(base_model, device=device)
        return greedy_generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            desc="base answers (cached once)",
        )

    return generate


def start_run(
    options: DataOptions,
    cfg: TrainConfig,
    *,
    base_model: str,
    runs_dir: Path,
    cache_dir: Path,
    run_id: str,
    parent: ParentVersion | None = None,
) -> tuple[Path, PreparedData]:
    """Prepare the data and create the run folder (nothing is created if the data is bad)."""
    prepared = prepare_data(
        options.data,
        data_format=options.data_format,
        prompt_column=options.prompt_column,
        completion_column=options.completion_column,
        scrub=options.scrub,
        val_fraction=options.val_fraction,
        test_fraction=options.test_fraction,
        seed=cfg.seed,
    )
    if options.general_mix:
        prompts = load_prompts(options.general_prompts)
        device = pick_device(cfg.device)
        answers = cached_base_answers(
            [item.messages for item in prompts],
            kind="general",
            cache_dir=cache_dir,
            base_key=base_fingerprint(base_model),
            settings={"max_new_tokens": options.general_max_new_tokens, "device": device},
            generate=_base_generator(base_model, device, options.general_max_new_tokens),
        )
        limit = max(options.general_min, round(options.general_ratio * len(prepared.train)))
        mixed = general_mix_examples(prompts, answers, limit=limit, seed=cfg.seed)
        prepared.train.extend(mixed)
        prepared.summary.general_mixed = len(mixed)
    splits = {"train": prepared.train, "validation": prepared.validation, "test": prepared.test}
    run_dir = _new_run_folder(
        runs_dir, run_id, write_examples, splits, prepared.summary.to_json(), parent
    )
    return run_dir, prepared


def start_dpo_run(
    options: DataOptions,
    cfg: TrainConfig,
    *,
    runs_dir: Path,
    run_id: str,
    parent: ParentVersion | None = None,
) -> tuple[Path, PreparedPreferences]:
    """`start_run` for a preference file: the pairs' train/validation/test split."""
    prepared = prepare_preferences(
        options.data,
        scrub=options.scrub,
        val_fraction=options.val_fraction,
        test_fraction=options.test_fraction,
        seed=cfg.seed,
    )
    splits = {"train": prepared.train, "validation": prepared.validation, "test": prepared.test}
    run_dir = _new_run_folder(
        runs_dir, run_id, write_pairs, splits, prepared.summary.to_json(), parent
    )
    return run_dir, prepared


def _new_run_folder(
    runs_dir: Path,
    run_id: str,
    write: Callable[[Path, Any], object],
    splits: dict[str, Any],
    summary: dict[str, Any],
    parent: ParentVersion | None,
) -> Path:
    """The run folder: each split in data/<name>.jsonl, the data's summary in the run card,
    and the parent's files and section, if any."""
    run_dir = runs_dir / run_id
    if run_dir.exists():
        raise InvalidOption(f"run folder {run_dir} already exists", param="run_id")
    for name, rows in splits.items():
        write(run_dir / "data" / f"{name}.jsonl", rows)
    update_run_card(run_dir, run_id=run_id, data=summary)
    if parent is not None:
        update_run_card(run_dir, parent=save_parent(run_dir, parent))
    return run_dir


def gate_run(
    run_dir: Path,
    base_model: str,
    options: GateOptions,
    cfg: TrainConfig,
    *,
    cache_dir: Path,
) -> GateReport:
    """Gate the run's adapter against the base; writes gate.json and the run card's gate.

    The measurements of a gate.json made for the same adapter, test split, control and golden
    files are reused, judged against the thresholds given now (resuming a finished run to
    publish it, or with other limits, runs no model). A run made before lorag split off a
    test set has none: its gate cannot judge it."""
    limits = options.thresholds
    test_file = run_dir / "data" / "test.jsonl"
    parent = read_parent(run_dir)
    golden_files = parent_golden_files(run_dir)
    inputs = {
        "adapter": file_sha256(run_dir / "adapter" / "adapter_model.safetensors"),
        "test": file_sha256(test_file) if test_file.is_file() else "none",
        "control": file_sha256(options.control),
        "golden": file_sha256(options.golden) if options.golden is not None else "none",
        "measured": f"short_answer_words={limits.short_answer_words},"
        f"max_generations={limits.max_generations}",
    }
    if cfg.method != "sft":
        inputs["method"] = cfg.method
    if parent is not None:
        inputs["parent"] = parent.sha256
        inputs["parent_golden"] = ",".join(file_sha256(path) for path in golden_files)
    saved = run_dir / "gate.json"
    if saved.is_file():
        previous = GateReport.from_json(json.loads(saved.read_text()))
        if previous.inputs == inputs:
            report = previous.rejudged(limits)
            _record_gate(run_dir, report, options)
            return report
    dpo = cfg.method == "dpo"
    report = gate_adapter(
        run_dir / "adapter",
        base_model=base_model,
        test=None if dpo else read_examples(test_file) if test_file.is_file() else [],
        control=options.control,
        golden=options.golden,
        thresholds=limits,
        cache_dir=cache_dir,
        device=pick_device(cfg.device),
        control_max_new_tokens=options.control_max_new_tokens,
        max_len=cfg.max_seq_len,
        preferences=(read_pairs(test_file) if test_file.is_file() else []) if dpo else None,
        parent=None if parent is None else (parent.ref, parent_adapter_dir(run_dir), golden_files),
    )
    if not test_file.is_file():
        report.notes.append(f"{run_dir.name} has no test split (made before lorag had one)")
    report.inputs = inputs
    _record_gate(run_dir, report, options)
    return report


def _record_gate(run_dir: Path, report: GateReport, options: GateOptions) -> None:
    """gate.json and the run card's gate section."""
    (run_dir / "gate.json").write_text(json.dumps(report.to_json(), indent=2))
    update_run_card(
        run_dir,
        gate={
            **report.summary(),
            "failures": report.failures,
            "control_file": options.control.name,
            "golden_file": options.golden.name if options.golden is not None else None,
        },
    )


def run_job(
    cfg: TrainConfig,
    *,
    base_model: str,
    runs_dir: Path,
    cache_dir: Path,
    data: DataOptions | None = None,
    resume: Path | None = None,
    gate: GateOptions | None = None,
    publish: Any = None,
    run_name: str | None = None,
    progress: bool = True,
    say: Callable[[str], object] = lambda _: None,
    parent: ParentVersion | None = None,
) -> JobResult:
    """Start (from `data`, continuing `parent` if given) or resume (`resume` = run folder) a
    run, train it (`cfg.method`: SFT or DPO), gate it, and call `publish(run_dir) ->
    PublishResult` when given (it raises if the gate failed). `say` receives the
    human-readable progress lines (the CLI prints them)."""
    gate = gate or GateOptions()
    load_prompts(gate.control)  # a bad control or golden line stops the job before training
    if gate.golden is not None:
        load_golden(gate.golden)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if resume is not None:
        if not (resume / "config.json").is_file():
            raise RunNotFound(f"{resume} is not a training run (no config.json)", param="resume")
        run_dir = resume
    elif data is not None and cfg.method == "dpo":
        run_dir, pairs = start_dpo_run(
            data, cfg, runs_dir=runs_dir, run_id=new_run_id(run_name), parent=parent
        )
        say(describe_data(pairs))
    elif data is not None:
        run_dir, prepared = start_run(
            data,
            cfg,
            base_model=base_model,
            runs_dir=runs_dir,
            cache_dir=cache_dir,
            run_id=new_run_id(run_name),
            parent=parent,
        )
        say(describe_data(prepared))
    else:
        raise InvalidOption("give the training data (--data FILE) or a run to --resume")
    say(f"run: {run_dir}")
    continued = read_parent(run_dir)
    if continued is not None:
        say(f"continuing {continued.ref} (its weights, rank {continued.rank}; gate vs it too)")
    device = pick_device(cfg.device)
    say(f"device: {device}, precision: {resolve_precision(cfg.precision, device)}")
    trainer = train_dpo if cfg.method == "dpo" else train
    training = trainer(cfg, run_dir, base_model, progress=progress)
    gc.collect()  # the training model (peft wraps hold reference cycles) before the gate's
    say(
        f"trained {training.steps}/{training.total_steps} steps in {training.train_seconds:.0f} s"
        f"; best validation loss {training.best_val_loss} at step {training.best_step}"
        + (" (stopped early)" if training.stopped_early else "")
    )
    report = gate_run(run_dir, base_model, gate, cfg, cache_dir=cache_dir)
    say(describe_gate(report))
    published = publish(run_dir) if publish is not None else None
    return JobResult(run_dir, training, report, published)


def describe_data(prepared: PreparedData | PreparedPreferences) -> str:
    s = prepared.summary
    scrubbed = ", ".join(f"{n} {kind}" for kind, n in s.scrubbed.items()) or "nothing"
    scrubbed = scrubbed if s.scrub else "off (--no-scrub)"
    if isinstance(prepared, PreparedPreferences):
        return (
            f"data: {s.file} (preference pairs): {s.records} pairs, {s.duplicates_dropped} "
            f"duplicates dropped, scrubbed: {scrubbed}; {s.train} train, {s.validation} "
            f"validation, {s.test} test"
        )
    return (
        f"data: {s.file} ({s.format}): {s.records} records, {s.duplicates_dropped} duplicates "
        f"dropped, scrubbed: {scrubbed}; {s.train} train + {s.general_mixed} general-mix, "
        f"{s.validation} validation, {s.test} test"
    )


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> tuple[TrainConfig, str]:
    """The TrainConfig saved in `run_dir` with `overrides` applied (e.g. a larger max_steps),
    and the run's base model."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunNotFound(f"{run_dir} is not a training run (no config.json)", param="resume")
    saved = json.loads(path.read_text())
    cfg = TrainConfig.from_json({**saved["train"], **overrides})
    return cfg, str(saved["base_model"])
