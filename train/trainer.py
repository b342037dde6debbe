"""LoRA fine-tuning of the base model: one script, read it top to bottom.

Usage (the CLI prepares the data and the run folder, then calls `train`):

    lorag train --data examples.jsonl --name support            # prepare, train, gate, publish
    lorag train --data examples.jsonl --name support --max-steps 20 --no-publish
    lorag train --resume .lorag/runs/support-20250101-120000-ab12 --name support

    from train.trainer import TrainConfig, train
    result = train(TrainConfig(epochs=2, lr=1e-3), run_dir, base_model="path/to/hf-folder")

`run_dir` must hold `data/train.jsonl` and `data/validation.jsonl` (see `train.pipeline`); its
`data/test.jsonl` is the gate's alone: training never opens it, so no test example chooses a
checkpoint or stops training early. A run continued `--from` a published version holds that
version in `parent/` and starts from its weights (`train.parent.start_lora`). Preference
pairs (`--method dpo`) train in `train.dpo_trainer` instead.
What it writes there:

    config.json       this TrainConfig and the base model (what `--resume` reads back)
    checkpoints/      step-NNNNNN/: adapter, optimizer, RNG and TrainState (newest few kept)
    best/             the adapter at the lowest validation loss so far
    adapter/          the result: adapter_config.json + adapter_model.safetensors (peft)
    log.jsonl         one row per step (loss, lr, tokens/s) and per evaluation (val_loss)
    loss.png          the loss curve;  run_card.json: data, hyperparameters, metrics, versions

The recipe: the base model's chat template, loss on assistant tokens only, LoRA on the
attention and MLP projections (the modules vLLM serves LoRA on), AdamW, linear warmup then
cosine decay. CPU: fp32 weights, bf16 autocast only where the CPU has native bf16
(`precision="auto"`; emulated bf16 is several times slower). CUDA: QLoRA (4-bit NF4 base,
bitsandbytes) by default. On the bundled 135M model with 2 CPU threads a step of 8 short
examples takes ~2.4 s (bf16) / ~4 s (fp32) on an AVX-512 CPU; see docs/benchmarks.md for an
AVX2 one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm import tqdm

from train.checkpoints import (
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_adapter,
    save_checkpoint,
)
from train.config import DEFAULT_TARGETS, TrainConfig, help_for
from train.encoding import EncodedExample, collate, encode_messages, length_groups
from train.errors import InvalidOption, TrainingFailed
from train.examples import read_examples
from train.inference import answer_nll, assistant_logits, autocast_context
from train.model_setup import (
    load_adapter,
    load_base,
    pick_device,
    resolve_precision,
    resolve_quantization,
)
from train.parent import start_lora
from train.run_card import device_description, library_versions, plot_losses, update_run_card

__all__ = [
    "DEFAULT_TARGETS",
    "TrainConfig",
    "TrainResult",
    "help_for",
    "train",
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


# --- the run ----------------------------------------------------------------------------------


def train(
    cfg: TrainConfig, run_dir: Path, base_model: str, *, progress: bool = True
) -> TrainResult:
    """Train (or resume, if `run_dir` has checkpoints) and write the adapter; see module doc."""
    started = time.monotonic()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    quantization = resolve_quantization(cfg.quantization, device)
    precision = resolve_precision(cfg.precision, device)
    (run_dir / "config.json").write_text(
        json.dumps({"base_model": base_model, "train": cfg.to_json()}, indent=2)
    )

    # data: tokenized once; examples cut to nothing by max_seq_len are dropped
    train_examples = read_examples(run_dir / "data" / "train.jsonl")
    val_examples = read_examples(run_dir / "data" / "validation.jsonl")
    model, tokenizer = load_base(
        base_model,
        device=device,
        quantization=quantization,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    model.config.use_cache = False  # no KV cache while training
    encoded: list[EncodedExample] = []
    for example in train_examples:
        item = encode_messages(
            tokenizer, example.conversation, cfg.max_seq_len, open_end=example.open_end
        )
        if item is not None:
            encoded.append(item)
    if not encoded:
        raise InvalidOption("no training example has assistant tokens within max_seq_len")
    truncated = sum(item.truncated for item in encoded) + len(train_examples) - len(encoded)

    # model + optimizer, fresh or from the newest checkpoint
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        model = start_lora(model, cfg, run_dir)  # fresh, or the `--from` version's weights
    else:
        model = load_adapter(model, checkpoint / "adapter", trainable=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = TrainState() if checkpoint is None else load_checkpoint(checkpoint, optimizer)

    micro_batches = math.ceil(len(encoded) / cfg.batch_size)
    steps_per_epoch = max(1, micro_batches // cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    pad_id = tokenizer.pad_token_id
    log_path = run_dir / "log.jsonl"
    if checkpoint is None:
        log_path.unlink(missing_ok=True)  # rows of an attempt that died before a checkpoint

    def evaluate() -> float | None:
        if not val_examples:
            return None
        scores = answer_nll(
            model,
            tokenizer,
            [example.conversation for example in val_examples],
            max_len=cfg.max_seq_len,
            batch_size=cfg.batch_size,
            precision=precision.value,
        )
        tokens = sum(count for _, count in scores)
        return sum(nll for nll, _ in scores) / max(tokens, 1)

    def log(row: dict[str, float]) -> None:
        state.history.append(row)
        with log_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    model.train()
    bar = tqdm(total=total_steps, initial=state.step, desc="training", disable=not progress)
    window_start, window_tokens = time.monotonic(), 0
    while state.step < total_steps and not state.stopped_early:
        step_started = time.monotonic()
        epoch, slot = divmod(state.step, steps_per_epoch)
        order = epoch_order(len(encoded), cfg.seed, epoch)
        lr = lr_at(state.step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # one optimizer step = grad_accum micro-batches
        step_loss, step_tokens = 0.0, 0
        for micro in range(cfg.grad_accum):
            first = (slot * cfg.grad_accum + micro) * cfg.batch_size
            batch_items = [encoded[i] for i in order[first : first + cfg.batch_size]]
            if not batch_items:
                continue
            # the micro-batch's loss is the mean over all its answer tokens; its examples run
            # in groups of similar length (less padding), each group's summed loss divided by
            # the micro-batch's answer-token count, so the gradient is the micro-batch's
            answer_tokens = sum(item.trained_tokens for item in batch_items)
            micro_loss = 0.0
            for part in length_groups(batch_items):
                batch = {k: v.to(device) for k, v in collate(part, pad_id).items()}
                with autocast_context(device, precision.value):
                    logits, targets, _ = assistant_logits(model, batch)
                loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
                loss = loss / answer_tokens
                (loss / cfg.grad_accum).backward()
                micro_loss += float(loss.detach())
                step_tokens += int(batch["attention_mask"].sum())
            step_loss += micro_loss / cfg.grad_accum
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
        log(
            {
                "step": state.step,
                "epoch": epoch + 1,
                "loss": step_loss,
                "lr": lr,
                "tokens": step_tokens,
                "tokens_per_s": round(tokens_per_s, 1),
            }
        )
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens_per_s:.0f}", lr=f"{lr:.1e}")
        bar.update(1)

        # evaluation and early stopping
        end_of_epoch = state.step % steps_per_epoch == 0
        last = state.step == total_steps
        if end_of_epoch or last or (cfg.eval_every and state.step % cfg.eval_every == 0):
            val_loss = evaluate()
            if val_loss is not None:
                log({"step": state.step, "val_loss": val_loss})
                bar.write(f"step {state.step}: validation loss {val_loss:.4f}")
                if state.best_val_loss is None or val_loss < state.best_val_loss:
                    state.best_val_loss, state.best_step = val_loss, state.step
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

    # the result: the best adapter by validation loss, else the last weights
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
        total_steps=total_steps,
        best_val_loss=state.best_val_loss,
        best_step=state.best_step,
        final_train_loss=losses[-1] if losses else None,
        stopped_early=state.stopped_early,
        tokens_seen=state.tokens_seen,
        train_seconds=round(state.train_seconds, 2),
    )
    plot_losses(state.history, run_dir / "loss.png", title=f"{run_dir.name} ({base_model})")
    update_run_card(
        run_dir,
        run_id=run_dir.name,
        base_model=base_model,
        hyperparameters=cfg.to_json(),
        metrics={
            "steps": result.steps,
            "total_steps": total_steps,
            "steps_per_epoch": steps_per_epoch,
            "final_train_loss": result.final_train_loss,
            "best_val_loss": result.best_val_loss,
            "best_step": result.best_step,
            "stopped_early": result.stopped_early,
            "tokens_seen": result.tokens_seen,
            "tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
            "train_examples_truncated": truncated,
        },
        device={
            "device": device_description(device),
            "quantization": quantization,
            "precision": precision.value,
            "precision_reason": precision.reason,
        },
        libraries=library_versions(),
        train_seconds=result.train_seconds,
        duration_s=round(time.monotonic() - started, 2),
    )
    return result
