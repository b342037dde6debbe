"""DPO on preference pairs: one loop, read it top to bottom (the SFT loop is `train.trainer`).

Usage (the CLI prepares the pairs and the run folder, then calls `train_dpo`):

    lorag train --method dpo --data prefs.jsonl --name support-tone
    lorag train --method dpo --data prefs.jsonl --from support@v3 --beta 0.1

`run_dir/data/train.jsonl` and `validation.jsonl` hold `PreferencePair`s (`test.jsonl` is the
gate's alone). The folder's layout is the SFT one (config.json, checkpoints/, best/, adapter/,
log.jsonl, loss.png, run_card.json), plus `reference_logps.json`.

The reference is the model training starts from: the base with a fresh LoRA (whose B matrices
are zero, so it IS the base), or the `--from` version's weights. It never changes, so the
log-probabilities of both answers of every train and validation pair under it are computed
once, before the first step, and kept in `reference_logps.json` (a resumed run reads them
back): no second model runs during training. Each optimizer step then takes micro-batches of
pairs (both conversations of each in one forward pass), scores both answers, and descends
`train.dpo.dpo_loss`. Evaluation: the validation pairs' mean DPO loss and preference accuracy;
early stopping and the best adapter follow the validation loss, as in SFT.

On the bundled 135M model with one thread, a step of 4 pairs (8 conversations of ~100 tokens)
takes about as long as an SFT step of 8 examples; see docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

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
from train.config import TrainConfig
from train.dpo import answer_logps, dpo_loss, encode_pair, pair_logps
from train.encoding import collate
from train.errors import InvalidOption, TrainingFailed
from train.inference import autocast_context
from train.model_setup import load_base, pick_device, resolve_precision, resolve_quantization
from train.parent import read_parent, start_lora
from train.preferences import PreferencePair, read_pairs
from train.run_card import device_description, library_versions, plot_losses, update_run_card
from train.trainer import TrainResult, epoch_order, lr_at

__all__ = ["train_dpo"]

_REFERENCE_FILE = "reference_logps.json"


def _reference_logps(
    run_dir: Path,
    model: Any,
    tokenizer: Any,
    splits: dict[str, list[PreferencePair]],
    cfg: TrainConfig,
    precision: str,
) -> dict[str, list[tuple[float, float]]]:
    """Both answers' log-probabilities under the starting model, per split (computed once)."""
    path = run_dir / _REFERENCE_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        return {name: [(p, n) for p, n in rows] for name, rows in saved.items()}
    scores = {
        name: pair_logps(
            model,
            tokenizer,
            pairs,
            max_len=cfg.max_seq_len,
            batch_size=cfg.batch_size,
            precision=precision,
        )
        for name, pairs in splits.items()
    }
    path.write_text(json.dumps(scores))
    return scores


def train_dpo(
    cfg: TrainConfig, run_dir: Path, base_model: str, *, progress: bool = True
) -> TrainResult:
    """Train (or resume) a DPO adapter and write it; see the module docstring."""
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

    # data, and the starting model: the base (no LoRA yet) or the parent's weights
    train_pairs = read_pairs(run_dir / "data" / "train.jsonl")
    val_pairs = read_pairs(run_dir / "data" / "validation.jsonl")
    model, tokenizer = load_base(
        base_model,
        device=device,
        quantization=quantization,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    model.config.use_cache = False
    parent = read_parent(run_dir)
    if parent is not None:
        model = start_lora(model, cfg, run_dir)
    reference = _reference_logps(
        run_dir,
        model,
        tokenizer,
        {"train": train_pairs, "validation": val_pairs},
        cfg,
        precision.value,
    )
    encoded = []  # (preferred, non-preferred, reference log-probs) of each usable train pair
    for pair, ref in zip(train_pairs, reference["train"], strict=True):
        both = encode_pair(tokenizer, pair, cfg.max_seq_len)
        if both is not None:
            encoded.append((*both, ref))
    if not encoded:
        raise InvalidOption("no preference pair has both answers within max_seq_len")
    dropped = len(train_pairs) - len(encoded)

    # the trainable adapter, fresh or from the newest checkpoint
    if parent is None:
        model = start_lora(model, cfg, run_dir)
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:
        set_peft_model_state_dict(
            model, load_file(checkpoint / "adapter" / "adapter_model.safetensors")
        )
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
        log_path.unlink(missing_ok=True)

    def evaluate() -> tuple[float, float] | None:
        """(mean DPO loss, preference accuracy) on the validation pairs."""
        if not val_pairs:
            return None
        scores = pair_logps(
            model,
            tokenizer,
            val_pairs,
            max_len=cfg.max_seq_len,
            batch_size=cfg.batch_size,
            precision=precision.value,
        )
        policy, ref = torch.tensor(scores), torch.tensor(reference["validation"])
        losses, margins = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], cfg.beta)
        return float(losses.mean()), float((margins > 0).float().mean())

    def log(row: dict[str, float]) -> None:
        state.history.append(row)
        with log_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    model.train()
    bar = tqdm(total=total_steps, initial=state.step, desc="training (dpo)", disable=not progress)
    window_start, window_tokens = time.monotonic(), 0
    while state.step < total_steps and not state.stopped_early:
        step_started = time.monotonic()
        epoch, slot = divmod(state.step, steps_per_epoch)
        order = epoch_order(len(encoded), cfg.seed, epoch)
        lr = lr_at(state.step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # one optimizer step = grad_accum micro-batches of pairs
        step_loss, step_correct, step_pairs, step_tokens = 0.0, 0, 0, 0
        for micro in range(cfg.grad_accum):
            first = (slot * cfg.grad_accum + micro) * cfg.batch_size
            items = [encoded[i] for i in order[first : first + cfg.batch_size]]
            if not items:
                continue
            rows = [preferred for preferred, _, _ in items]
            rows += [non_preferred for _, non_preferred, _ in items]
            batch = {k: v.to(device) for k, v in collate(rows, pad_id).items()}
            ref = torch.tensor([r for _, _, r in items], device=device)
            with autocast_context(device, precision.value):
                logps = answer_logps(model, batch)
            count = len(items)
            losses, margins = dpo_loss(logps[:count], logps[count:], ref[:, 0], ref[:, 1], cfg.beta)
            loss = losses.mean()
            if cfg.sft_weight:  # + the preferred answers' mean NLL per token
                tokens = sum(preferred.trained_tokens for preferred, _, _ in items)
                loss = loss - cfg.sft_weight * logps[:count].sum() / tokens
            (loss / cfg.grad_accum).backward()
            step_loss += float(loss.detach()) / cfg.grad_accum
            step_correct += int((margins > 0).sum())
            step_pairs += count
            step_tokens += int(batch["attention_mask"].sum())
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
        accuracy = step_correct / max(step_pairs, 1)
        log(
            {
                "step": state.step,
                "epoch": epoch + 1,
                "loss": step_loss,
                "accuracy": accuracy,
                "lr": lr,
                "tokens": step_tokens,
                "tokens_per_s": round(tokens_per_s, 1),
            }
        )
        bar.set_postfix(loss=f"{step_loss:.3f}", acc=f"{accuracy:.2f}", lr=f"{lr:.1e}")
        bar.update(1)

        # evaluation and early stopping
        end_of_epoch = state.step % steps_per_epoch == 0
        last = state.step == total_steps
        if end_of_epoch or last or (cfg.eval_every and state.step % cfg.eval_every == 0):
            measured = evaluate()
            if measured is not None:
                val_loss, val_accuracy = measured
                log({"step": state.step, "val_loss": val_loss, "val_accuracy": val_accuracy})
                bar.write(
                    f"step {state.step}: validation DPO loss {val_loss:.4f}, "
                    f"accuracy {val_accuracy:.0%}"
                )
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
            window_start, window_tokens = time.monotonic(), 0

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
    losses_seen = [row["loss"] for row in state.history if "loss" in row]
    val_rows = [row for row in state.history if "val_accuracy" in row]
    best_row = next((r for r in val_rows if r["step"] == state.best_step), None)
    result = TrainResult(
        run_dir=run_dir,
        adapter_dir=adapter_dir,
        steps=state.step,
        total_steps=total_steps,
        best_val_loss=state.best_val_loss,
        best_step=state.best_step,
        final_train_loss=losses_seen[-1] if losses_seen else None,
        stopped_early=state.stopped_early,
        tokens_seen=state.tokens_seen,
        train_seconds=round(state.train_seconds, 2),
    )
    plot_losses(state.history, run_dir / "loss.png", title=f"{run_dir.name} (DPO, {base_model})")
    update_run_card(
        run_dir,
        run_id=run_dir.name,
        base_model=base_model,
        hyperparameters=cfg.to_json(),
        metrics={
            "method": "dpo",
            "reference": parent.ref if parent is not None else "base",
            "steps": result.steps,
            "total_steps": total_steps,
            "steps_per_epoch": steps_per_epoch,
            "final_train_loss": result.final_train_loss,
            "best_val_loss": result.best_val_loss,
            "best_val_accuracy": best_row["val_accuracy"] if best_row else None,
            "best_step": result.best_step,
            "stopped_early": result.stopped_early,
            "tokens_seen": result.tokens_seen,
            "tokens_per_s": round(result.tokens_seen / max(result.train_seconds, 1e-9), 1),
            "train_pairs_dropped": dropped,
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
