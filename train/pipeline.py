"""One training job end to end: data -> run folder -> train -> gate -> publish.

    start_run     validate + scrub + dedupe + split the user's file (errors stop here, before
                  any run folder exists), mix in the base's own answers to general prompts,
                  create `runs_dir/<run_id>/` with data/train.jsonl, data/validation.jsonl
    train         `train.trainer.train` (resumable)
    gate_run      load base + the run's adapter, run the gate, write gate.json
    publish       `train.publish.publish_run` (refused on a failed gate unless forced)

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

from train.base_answers import base_fingerprint, cached_base_answers, general_mix_examples
from train.dataset import file_sha256, prepare_data
from train.errors import InvalidOption, RunNotFound
from train.examples import Message, PreparedData, read_examples, write_examples
from train.gate import GateReport, GateThresholds, direct_base_answers, run_gate
from train.inference import Generation, greedy_generate
from train.model_setup import load_adapter, load_base, pick_device, resolve_precision
from train.prompt_sets import CONTROL_PROMPTS, GENERAL_PROMPTS, PromptItem, load_prompts
from train.run_card import update_run_card
from train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "DataOptions",
    "GateOptions",
    "JobResult",
    "gate_run",
    "resume_config",
    "run_job",
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
    general_mix: bool = True
    general_prompts: Path = GENERAL_PROMPTS
    general_ratio: float = 0.35  # at most this many general examples per user example...
    general_min: int = 8  # ...but at least this many (small datasets)
    general_max_new_tokens: int = 128


@dataclass(frozen=True)
class GateOptions:
    control: Path = CONTROL_PROMPTS
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
) -> tuple[Path, PreparedData]:
    """Prepare the data and create the run folder (nothing is created if the data is bad)."""
    prepared = prepare_data(
        options.data,
        data_format=options.data_format,
        prompt_column=options.prompt_column,
        completion_column=options.completion_column,
        scrub=options.scrub,
        val_fraction=options.val_fraction,
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
    run_dir = runs_dir / run_id
    if run_dir.exists():
        raise InvalidOption(f"run folder {run_dir} already exists", param="run_id")
    write_examples(run_dir / "data" / "train.jsonl", prepared.train)
    write_examples(run_dir / "data" / "validation.jsonl", prepared.validation)
    update_run_card(run_dir, run_id=run_id, data=prepared.summary.to_json())
    return run_dir, prepared


def gate_run(
    run_dir: Path,
    base_model: str,
    options: GateOptions,
    cfg: TrainConfig,
    *,
    cache_dir: Path,
) -> GateReport:
    """Gate the run's adapter against the base; writes gate.json and the run card's gate.

    The measurements of a gate.json made for the same adapter and control file are reused,
    judged against the thresholds given now (resuming a finished run to publish it, or with
    other limits, runs no model)."""
    limits = options.thresholds
    inputs = {
        "adapter": file_sha256(run_dir / "adapter" / "adapter_model.safetensors"),
        "control": file_sha256(options.control),
        "measured": f"short_answer_words={limits.short_answer_words},"
        f"max_generations={limits.max_generations}",
    }
    saved = run_dir / "gate.json"
    if saved.is_file():
        previous = GateReport.from_json(json.loads(saved.read_text()))
        if previous.inputs == inputs:
            report = previous.judged(limits)
            _record_gate(run_dir, report, options)
            return report
    device = pick_device(cfg.device)
    control: list[PromptItem] = load_prompts(options.control)
    model, tokenizer = load_base(base_model, device=device)
    model = load_adapter(model, run_dir / "adapter")
    direct = direct_base_answers(model, tokenizer)
    base_key = base_fingerprint(base_model)

    def base_answers(
        kind: str, prompts: list[list[Message]], max_new_tokens: int
    ) -> list[Generation]:
        return cached_base_answers(
            prompts,
            kind=kind,
            cache_dir=cache_dir,
            base_key=base_key,
            settings={"max_new_tokens": max_new_tokens, "device": device},
            generate=lambda missing: direct(kind, missing, max_new_tokens),
        )

    report = run_gate(
        model,
        tokenizer,
        validation=read_examples(run_dir / "data" / "validation.jsonl"),
        control=control,
        base_answers=base_answers,
        thresholds=options.thresholds,
        control_max_new_tokens=options.control_max_new_tokens,
        max_len=cfg.max_seq_len,
    )
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
) -> JobResult:
    """Start (from `data`) or resume (`resume` = run folder) a run, train it, gate it, and
    call `publish(run_dir) -> PublishResult` when given (it raises if the gate failed).
    `say` receives the human-readable progress lines (the CLI prints them)."""
    gate = gate or GateOptions()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if resume is not None:
        if not (resume / "config.json").is_file():
            raise RunNotFound(f"{resume} is not a training run (no config.json)", param="resume")
        run_dir = resume
    elif data is not None:
        run_dir, prepared = start_run(
            data,
            cfg,
            base_model=base_model,
            runs_dir=runs_dir,
            cache_dir=cache_dir,
            run_id=new_run_id(run_name),
        )
        say(describe_data(prepared))
    else:
        raise InvalidOption("give the training data (--data FILE) or a run to --resume")
    say(f"run: {run_dir}")
    device = pick_device(cfg.device)
    say(f"device: {device}, precision: {resolve_precision(cfg.precision, device)}")
    training = train(cfg, run_dir, base_model, progress=progress)
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


def describe_data(prepared: PreparedData) -> str:
    s = prepared.summary
    scrubbed = ", ".join(f"{n} {kind}" for kind, n in s.scrubbed.items()) or "nothing"
    scrubbed = scrubbed if s.scrub else "off (--no-scrub)"
    return (
        f"data: {s.file} ({s.format}): {s.records} records, {s.duplicates_dropped} duplicates "
        f"dropped, scrubbed: {scrubbed}; {s.train} train + {s.general_mixed} general-mix, "
        f"{s.validation} validation"
    )


def describe_gate(report: GateReport) -> str:
    h, c = report.held_out, report.control
    lines = [f"gate: {'PASSED' if report.passed else 'FAILED'} ({report.seconds:.0f} s)"]
    if h.get("adapter_loss") is not None:
        lines.append(
            f"  held-out loss {h['adapter_loss']:.4f} (base {h['base_loss']:.4f}), "
            f"{h['examples']} examples"
        )
    lines.append(
        f"  control: NLL rise {c['nll_rise']:+.3f} nats/token, "
        f"{len(c['keywords_lost'])}/{c['keywords_checked']} keywords lost"
    )
    lines += [f"  - {failure}" for failure in report.failures]
    return "\n".join(lines)


def resume_config(run_dir: Path, overrides: dict[str, Any]) -> tuple[TrainConfig, str]:
    """The TrainConfig saved in `run_dir` with `overrides` applied (e.g. a larger max_steps),
    and the run's base model."""
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunNotFound(f"{run_dir} is not a training run (no config.json)", param="resume")
    saved = json.loads(path.read_text())
    cfg = TrainConfig.from_json({**saved["train"], **overrides})
    return cfg, str(saved["base_model"])
