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

The loop itself (schedule, log, evaluation, early stopping, checkpoints, the result) is
`train.loop`, shared with DPO. The recipe: the base model's chat template, loss on assistant
tokens only, LoRA on the attention and MLP projections (the modules vLLM serves LoRA on),
AdamW, linear warmup then cosine decay. CPU: fp32 weights, bf16 autocast only where the CPU
has native bf16 (`precision="auto"`; emulated bf16 is several times slower). CUDA: QLoRA
(4-bit NF4 base, bitsandbytes) by default. On the bundled 135M model with 2 CPU threads a
step of 8 short examples takes ~2.4 s (bf16) / ~4 s (fp32) on an AVX-512 CPU; see
docs/benchmarks.md for an AVX2 one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from train.checkpoints import latest_checkpoint
from train.config import DEFAULT_TARGETS, TrainConfig, help_for
from train.encoding import EncodedExample, collate, encode_messages, length_groups
from train.errors import InvalidOption
from train.examples import read_examples
from train.inference import answer_nll, assistant_logits, autocast_context
from train.loop import (
    Evaluation,
    MicroBatch,
    TrainResult,
    begin,
    finish,
    optimize,
    optimizer_for,
)
from train.model_setup import load_adapter
from train.parent import start_lora

__all__ = [
    "DEFAULT_TARGETS",
    "TrainConfig",
    "TrainResult",
    "help_for",
    "train",
]


def train(
    cfg: TrainConfig, run_dir: Path, base_model: str, *, progress: bool = True
) -> TrainResult:
    """Train (or resume, if `run_dir` has checkpoints) and write the adapter; see module doc."""
    hardware, model, tokenizer = begin(cfg, run_dir, base_model)
    device, precision = hardware.device, hardware.precision.value

    # data: tokenized once; examples cut to nothing by max_seq_len are dropped
    train_examples = read_examples(run_dir / "data" / "train.jsonl")
    val_examples = read_examples(run_dir / "data" / "validation.jsonl")
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
    optimizer, state = optimizer_for(model, cfg, checkpoint)
    pad_id = tokenizer.pad_token_id

    def micro_batch(indices: list[int]) -> MicroBatch:
        # the micro-batch's loss is the mean over all its answer tokens; its examples run in
        # groups of similar length (less padding), each group's summed loss divided by the
        # micro-batch's answer-token count, so the gradient is the micro-batch's
        items = [encoded[i] for i in indices]
        answer_tokens = sum(item.trained_tokens for item in items)
        loss_sum, tokens = 0.0, 0
        for part in length_groups(items):
            batch = {k: v.to(device) for k, v in collate(part, pad_id).items()}
            with autocast_context(device, precision):
                logits, targets, _ = assistant_logits(model, batch)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            loss = loss / answer_tokens
            (loss / cfg.grad_accum).backward()
            loss_sum += float(loss.detach())
            tokens += int(batch["attention_mask"].sum())
        return MicroBatch(loss_sum, tokens)

    def evaluate() -> Evaluation | None:
        if not val_examples:
            return None
        scores = answer_nll(
            model,
            tokenizer,
            [example.conversation for example in val_examples],
            max_len=cfg.max_seq_len,
            batch_size=cfg.batch_size,
            precision=precision,
        )
        tokens = sum(count for _, count in scores)
        loss = sum(nll for nll, _ in scores) / max(tokens, 1)
        return Evaluation(loss, {}, f"validation loss {loss:.4f}")

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
        progress=progress,
    )
    return finish(
        cfg,
        run_dir,
        model=model,
        state=state,
        schedule=schedule,
        hardware=hardware,
        base_model=base_model,
        title=base_model,
        metrics={"train_examples_truncated": truncated},
    )
