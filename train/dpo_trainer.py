"""DPO on preference pairs: data, reference and loss; the loop is `train.loop`, shared with SFT.

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
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from train.checkpoints import latest_checkpoint
from train.config import TrainConfig
from train.dpo import answer_logps, dpo_loss, encode_pair, pair_logps
from train.encoding import collate
from train.errors import InvalidOption
from train.inference import autocast_context
from train.loop import (
    Evaluation,
    MicroBatch,
    TrainResult,
    begin,
    finish,
    optimize,
    optimizer_for,
)
from train.parent import read_parent, start_lora
from train.preferences import PreferencePair, read_pairs

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
    hardware, model, tokenizer = begin(cfg, run_dir, base_model)
    device, precision = hardware.device, hardware.precision.value

    # data, and the starting model: the base (no LoRA yet) or the parent's weights
    train_pairs = read_pairs(run_dir / "data" / "train.jsonl")
    val_pairs = read_pairs(run_dir / "data" / "validation.jsonl")
    parent = read_parent(run_dir)
    if parent is not None:
        model = start_lora(model, cfg, run_dir)
    reference = _reference_logps(
        run_dir, model, tokenizer, {"train": train_pairs, "validation": val_pairs}, cfg, precision
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
    optimizer, state = optimizer_for(model, cfg, checkpoint)
    pad_id = tokenizer.pad_token_id

    def micro_batch(indices: list[int]) -> MicroBatch:
        """Both answers of each pair in one forward pass, scored, and the DPO loss."""
        items = [encoded[i] for i in indices]
        rows = [preferred for preferred, _, _ in items]
        rows += [non_preferred for _, non_preferred, _ in items]
        batch = {k: v.to(device) for k, v in collate(rows, pad_id).items()}
        ref = torch.tensor([r for _, _, r in items], device=device)
        with autocast_context(device, precision):
            logps = answer_logps(model, batch)
        count = len(items)
        losses, margins = dpo_loss(logps[:count], logps[count:], ref[:, 0], ref[:, 1], cfg.beta)
        loss = losses.mean()
        if cfg.sft_weight:  # + the preferred answers' mean NLL per token
            tokens = sum(preferred.trained_tokens for preferred, _, _ in items)
            loss = loss - cfg.sft_weight * logps[:count].sum() / tokens
        (loss / cfg.grad_accum).backward()
        tallies = {"correct": float((margins > 0).sum()), "pairs": float(count)}
        return MicroBatch(float(loss.detach()), int(batch["attention_mask"].sum()), tallies)

    def evaluate() -> Evaluation | None:
        """The validation pairs' mean DPO loss and preference accuracy."""
        if not val_pairs:
            return None
        scores = pair_logps(
            model,
            tokenizer,
            val_pairs,
            max_len=cfg.max_seq_len,
            batch_size=cfg.batch_size,
            precision=precision,
        )
        policy, ref = torch.tensor(scores), torch.tensor(reference["validation"])
        losses, margins = dpo_loss(policy[:, 0], policy[:, 1], ref[:, 0], ref[:, 1], cfg.beta)
        loss, accuracy = float(losses.mean()), float((margins > 0).float().mean())
        text = f"validation DPO loss {loss:.4f}, accuracy {accuracy:.0%}"
        return Evaluation(loss, {"val_accuracy": accuracy}, text)

    schedule = optimize(
        cfg,
        run_dir,
        model=model,
        optimizer=optimizer,
        state=state,
        resumed=checkpoint is not None,
        examples=len(encoded),
        micro_batch=micro_batch,
        evaluate=evaluate,
        step_measures=lambda t: {"accuracy": t.get("correct", 0.0) / max(t.get("pairs", 0.0), 1)},
        desc="training (dpo)",
        progress=progress,
    )
    val_rows = [row for row in state.history if "val_accuracy" in row]
    best_row = next((r for r in val_rows if r["step"] == state.best_step), None)
    return finish(
        cfg,
        run_dir,
        model=model,
        state=state,
        schedule=schedule,
        hardware=hardware,
        base_model=base_model,
        title=f"DPO, {base_model}",
        first_metrics={
            "method": "dpo",
            "reference": parent.ref if parent is not None else "base",
        },
        metrics={
            "best_val_accuracy": best_row["val_accuracy"] if best_row else None,
            "train_pairs_dropped": dropped,
        },
    )
