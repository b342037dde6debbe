"""The optimization loop SFT (`train.trainer`) and DPO (`train.dpo_trainer`) share.

A method brings its data, its starting model and two functions: `micro_batch(indices)` runs
the forward and backward pass of the examples at those indices of its training set (the loss
already divided by `grad_accum`) and says what it cost; `evaluate()` scores the validation
split. Everything else is the same for both and lives here:

    begin       threads, seed, device, quantization, precision; config.json; the base model
    optimizer_for  AdamW over the LoRA weights, and the state (fresh, or a checkpoint's)
    optimize    steps of `grad_accum` micro-batches in a seeded order per epoch, warmup then
                constant or cosine learning rate, gradient clipping, a log row per step and
                per evaluation (log.jsonl), the best adapter by validation loss (best/),
                early stopping, checkpoints (resumed from the newest)
    finish      the result (best/ restored unless `restore_best` is off) in adapter/,
                loss.png and the run card
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm import tqdm

from train.checkpoints import (
    TrainState,
    load_checkpoint,
    prune_checkpoints,
    save_adapter,
    save_checkpoint,
)
from train.config import TrainConfig
from train.errors import TrainingFailed
from train.model_setup import load_base, pick_device, resolve_precision, resolve_quantization
from train.run_card import device_description, library_versions, plot_losses, update_run_card

__all__ = [
    "Evaluation",
    "Hardware",
    "MicroBatch",
    "TrainResult",
    "begin",
    "epoch_order",
    "finish",
    "lr_at",
    "optimize",
    "optimizer_for",
]


@dataclass
class TrainResult:
    run_dir: Path
    adapter_dir: Path
    steps: int
    total_steps: int
    best_val_loss: float | None
    best_step: int | None
    final_train_loss: float | None
    stopped_early: bool
    tokens_seen: int
    train_seconds: float


@dataclass(frozen=True)
class Hardware:
    """Where and how a run trains, decided once at its start."""

    device: str
    quantization: str
    precision: Any  # model_setup.Precision: its value ("bf16", "fp32") and reason
    started: float  # time.monotonic() at the start

    def describe(self) -> dict[str, Any]:
        return {
            "device": device_description(self.device),
            "quantization": self.quantization,
            "precision": self.precision.value,
            "precision_reason": self.precision.reason,
        }


@dataclass
class MicroBatch:
    """What one micro-batch cost: its loss (before the division by `grad_accum`), the tokens
    it ran, and counts of the method's own (summed over a step's micro-batches)."""

    loss: float
    tokens: int
    tallies: dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    """The validation split's loss (it picks the best adapter and stops early), the method's
    other measures (logged beside it) and the line printed."""

    loss: float
    extra: dict[str, float]
    text: str


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    total_steps: int


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): warmup, then constant or cosine."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant" or total <= cfg.warmup_steps + 1:
        return cfg.lr
    progress = (step - cfg.warmup_steps) / (total - cfg.warmup_steps - 1)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a permutation fixed by (seed, epoch), so resume agrees."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order: list[int] = torch.randperm(n, generator=generator).tolist()
    return order


def begin(cfg: TrainConfig, run_dir: Path, base_model: str) -> tuple[Hardware, Any, Any]:
    """Threads, seed and hardware of a run; its config.json (what `--resume` reads back); the
    base model (no KV cache while training) and its tokenizer."""
    started = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    hardware = Hardware(
        device=device,
        quantization=resolve_quantization(cfg.quantization, device),
        precision=resolve_precision(cfg.precision, device),
        started=started,
    )
    (run_dir / "config.json").write_text(
        json.dumps({"base_model": base_model, "train": cfg.to_json()}, indent=2)
    )
    model, tokenizer = load_base(
        base_model,
        device=device,
        quantization=hardware.quantization,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    model.config.use_cache = False
    return hardware, model, tokenizer


def optimizer_for(
    model: Any, cfg: TrainConfig, checkpoint: Path | None
) -> tuple[torch.optim.Optimizer, TrainState]:
    """AdamW over the trainable (LoRA) weights, and the run's state: fresh, or the
    checkpoint's (the optimizer's moments restored too)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = TrainState() if checkpoint is None else load_checkpoint(checkpoint, optimizer)
    return optimizer, state


def optimize(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    resumed: bool,
    examples: int,
    micro_batch: Callable[[list[int]], MicroBatch],
    evaluate: Callable[[], Evaluation | None],
    step_measures: Callable[[dict[str, float]], dict[str, float]] = lambda tallies: {},
    desc: str = "training",
    progress: bool = True,
) -> Schedule:
    """Train until the schedule's last step or early stopping (see the module docstring);
    `state` is updated in place. `step_measures(tallies)`: the method's own columns of a
    step's log row (DPO: its preference accuracy)."""
    params = [p for p in model.parameters() if p.requires_grad]
    micro_batches = math.ceil(examples / cfg.batch_size)
    steps_per_epoch = max(1, micro_batches // cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    log_path = run_dir / "log.jsonl"
    if not resumed:
        log_path.unlink(missing_ok=True)  # rows of an attempt that died before a checkpoint

    def log(row: dict[str, float]) -> None:
        state.history.append(row)
        with log_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    model.train()
    bar = tqdm(total=total_steps, initial=state.step, desc=desc, disable=not progress)
    window_start, window_tokens = time.monotonic(), 0
    while state.step < total_steps and not state.stopped_early:
        step_started = time.monotonic()
        epoch, slot = divmod(state.step, steps_per_epoch)
        order = epoch_order(examples, cfg.seed, epoch)
        lr = lr_at(state.step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # one optimizer step = grad_accum micro-batches
        step_loss, step_tokens = 0.0, 0
        tallies: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            first = (slot * cfg.grad_accum + micro) * cfg.batch_size
            indices = order[first : first + cfg.batch_size]
            if not indices:
                continue
            done = micro_batch(indices)
            step_loss += done.loss / cfg.grad_accum
            step_tokens += done.tokens
            for name, value in done.tallies.items():
                tallies[name] = tallies.get(name, 0.0) + value
        if not math.isfinite(step_loss):
            raise TrainingFailed(f"loss became {step_loss} at step {state.step + 1}; lower --lr")
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        # bookkeeping and log
        state.step += 1
        state.tokens_seen += step_tokens
        state.train_seconds += time.monotonic() - step_started
        window_tokens += step_tokens
        tokens_per_s = window_tokens / max(time.monotonic() - window_start, 1e-9)
        measures = step_measures(tallies)
        log(
            {
                "step": state.step,
                "epoch": epoch + 1,
                "loss": step_loss,
                **measures,
                "lr": lr,
                "tokens": step_tokens,
                "tokens_per_s": round(tokens_per_s, 1),
            }
        )
        shown = {name: f"{value:.2f}" for name, value in measures.items()}
        bar.set_postfix(
            loss=f"{step_loss:.3f}", **shown, tok_s=f"{tokens_per_s:.0f}", lr=f"{lr:.1e}"
        )
        bar.update(1)

        # evaluation and early stopping
        end_of_epoch = state.step % steps_per_epoch == 0
        last = state.step == total_steps
        if end_of_epoch or last or (cfg.eval_every and state.step % cfg.eval_every == 0):
            measured = evaluate()
            if measured is not None:
                log({"step": state.step, "val_loss": measured.loss, **measured.extra})
                bar.write(f"step {state.step}: {measured.text}")
                if state.best_val_loss is None or measured.loss < state.best_val_loss:
                    state.best_val_loss, state.best_step = measured.loss, state.step
                    state.evals_without_improvement = 0
                    save_adapter(model, run_dir / "best")
                else:
                    state.evals_without_improvement += 1
                    patience = cfg.early_stopping_patience
                    if patience and state.evals_without_improvement >= patience:
                        state.stopped_early = True
                        bar.write(f"early stop: no improvement in {patience} evaluations")
            window_start, window_tokens = time.monotonic(), 0  # eval time is not training speed

        # checkpoint
        if (
            end_of_epoch
            or last
            or state.stopped_early
            or (cfg.save_every and state.step % cfg.save_every == 0)
        ):
            save_checkpoint(run_dir, model, optimizer, state)
            prune_checkpoints(run_dir, cfg.keep_checkpoints)
    bar.close()
    return Schedule(steps_per_epoch, total_steps)


def finish(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    model: Any,
    state: TrainState,
    schedule: Schedule,
    hardware: Hardware,
    base_model: str,
    title: str,
    metrics: dict[str, Any],
    first_metrics: dict[str, Any] | None = None,
) -> TrainResult:
    """Write the result (the best adapter by validation loss, else the last weights), the
    loss curve and the run card; `first_metrics` lead the card's metrics, `metrics` follow the
    shared ones."""
    adapter_dir = run_dir / "adapter"
    best = run_dir / "best"
    if cfg.restore_best and state.best_step is not None and best.is_dir():
        set_peft_model_state_dict(model, load_file(best / "adapter_model.safetensors"))
    save_adapter(model, adapter_dir)
    losses = [row["loss"] for row in state.history if "loss" in row]
    result = TrainResult(
        run_dir=run_dir,
        adapter_dir=adapter_dir,
        steps=state.step,
        total_steps=schedule.total_steps,
        best_val_loss=state.best_val_loss,
        best_step=state.best_step,
        final_train_loss=losses[-1] if losses else None,
        stopped_early=state.stopped_early,
        tokens_seen=state.tokens_seen,
        train_seconds=round(state.train_seconds, 2),
    )
    plot_losses(state.history, run_dir / "loss.png", title=f"{run_dir.name} ({title})")
    update_run_card(
        run_dir,
        run_id=run_dir.name,
        base_model=base_model,
        hyperparameters=cfg.to_json(),
        metrics={
            **(first_metrics or {}),
            "steps": result.steps,
            "total_steps": schedule.total_steps,
            "steps_per_epoch": schedule.steps_per_epoch,
            "final_train_loss": result.final_train_loss,
            "best_val_loss": result.best_val_loss,
            "best_step": result.best_step,
            "stopped_early": result.stopped_early,
            "tokens_seen": result.tokens_seen,
            "tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
            **metrics,
        },
        device=hardware.describe(),
        libraries=library_versions(),
        train_seconds=result.train_seconds,
        duration_s=round(time.monotonic() - hardware.started, 2),
    )
    return result
