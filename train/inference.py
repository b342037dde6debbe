"""Batched greedy generation and answer scoring, shared by the gate and the general mix.

`greedy_generate` left-pads prompts (sorted by length, so batches waste little padding) and
decodes until the end-of-turn token. `answer_nll` returns, per conversation, the summed
negative log-likelihood of its assistant tokens and their count: the validation loss and the
gate's forgetting check are both made of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
from tqdm import tqdm

from train.encoding import IGNORE_INDEX, collate, encode_messages, render_prompt
from train.examples import Message

__all__ = [
    "AnswerFn",
    "Generation",
    "adapter_merged",
    "answer_nll",
    "assistant_logits",
    "autocast_context",
    "greedy_agreement",
    "greedy_generate",
]


@dataclass(frozen=True)
class Generation:
    text: str
    finished: bool  # ended with the end-of-turn token (False: cut at max_new_tokens)
    tokens: int


AnswerFn = Callable[[str, list[list[Message]], int], list[Generation]]
"""(kind, prompts, max_new_tokens) -> one model's greedy answers: how the gate asks the base
(cached), or a parent version, for theirs."""


def autocast_context(device: str, precision: str) -> AbstractContextManager[object]:
    """bf16 autocast on the model's device when `precision == "bf16"`, else nothing."""
    if precision == "bf16":
        autocast: AbstractContextManager[object] = torch.autocast(
            device_type=device.split(":")[0], dtype=torch.bfloat16
        )
        return autocast
    return nullcontext()


_Function = TypeVar("_Function", bound=Callable[..., Any])


def _no_grad(function: _Function) -> _Function:
    """`torch.no_grad()` as a decorator that keeps the function's type (mypy reads torch as
    untyped: see pyproject.toml)."""
    return cast(_Function, torch.no_grad()(function))


@contextmanager
def adapter_merged(model: Any) -> Iterator[None]:
    """Fold the LoRA weights into the base weights for the duration (a peft model).

    Generation then costs what the base costs: the ~200 small LoRA matmuls per token are gone.
    Results match the unmerged adapter up to float rounding.
    """
    model.merge_adapter()
    try:
        yield
    finally:
        model.unmerge_adapter()


def _device_of(model: Any) -> torch.device:
    device: torch.device = next(model.parameters()).device
    return device


@_no_grad
def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    precision: str = "fp32",
    desc: str | None = None,
) -> list[Generation]:
    """Greedy answers to each conversation prefix in `prompts`, in order.

    On a CPU each decoding step of a small model costs about the same for 3 rows as for 32
    (it is bound by reading the weights): few large batches beat many small ones (the 20
    control prompts at 48 tokens: 12.7 s in batches of 16, 8.0 s in one batch of 32)."""
    device = _device_of(model)
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: dict[int, Generation] = {}
    end_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    was_training = model.training
    model.eval()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, disable=desc is None, leave=False):
        encoded = tokenizer(
            [texts[i] for i in batch],
            add_special_tokens=False,
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(device)
        with autocast_context(str(device), precision):
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=end_id,
                pad_token_id=pad_id,
                use_cache=True,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        for row, index in enumerate(batch):
            ids = new_tokens[row].tolist()
            finished = end_id in ids
            if finished:
                ids = ids[: ids.index(end_id)]
            text = tokenizer.decode(ids, skip_special_tokens=True).strip()
            results[index] = Generation(text, finished, len(ids))
    model.train(was_training)
    return [results[i] for i in range(len(texts))]


def assistant_logits(
    model: Any, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits only where the next token is an assistant token: (n, vocab) fp32, the n
    target ids, and the batch row of each.

    The decoder runs as usual, but the vocabulary projection (49k wide for the bundled model)
    is applied to those n positions only instead of every position of every row: the full
    fp32 logits and their gradient were the largest tensors of a training step.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    hidden = decoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    logits = base.get_output_embeddings()(hidden[:, :-1][mask])
    return logits.float(), targets[mask], mask.nonzero()[:, 0]


def _assistant_batches(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Message]],
    open_ends: Sequence[bool],
    *,
    max_len: int,
    batch_size: int,
    precision: str,
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Teacher-forced passes over the conversations, in batches, the model in eval mode:
    (their indices, assistant logits, target ids, batch row of each). Conversations with no
    assistant token within `max_len` are left out."""
    device = _device_of(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = [
        encode_messages(tokenizer, messages, max_len, open_end=flag)
        for messages, flag in zip(conversations, open_ends, strict=True)
    ]
    usable = [i for i, example in enumerate(encoded) if example is not None]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(usable), batch_size):
            indices = usable[start : start + batch_size]
            batch = collate([encoded[i] for i in indices], pad_id)  # type: ignore[misc]
            batch = {key: value.to(device) for key, value in batch.items()}
            with autocast_context(str(device), precision):
                logits, targets, rows = assistant_logits(model, batch)
            yield indices, logits, targets, rows
    finally:
        model.train(was_training)


@_no_grad
def answer_nll(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Message]],
    *,
    max_len: int = 1024,
    batch_size: int = 8,
    precision: str = "fp32",
    open_ends: Sequence[bool] | None = None,
) -> list[tuple[float, int]]:
    """(summed NLL of the assistant tokens, their count) for each conversation, in order.

    `open_ends[i]`: conversation i's last answer was cut short, so its end-of-turn marker is
    not scored.
    """
    flags = list(open_ends) if open_ends is not None else [False] * len(conversations)
    results: list[tuple[float, int]] = [(0.0, 0)] * len(conversations)
    passes = _assistant_batches(
        model,
        tokenizer,
        conversations,
        flags,
        max_len=max_len,
        batch_size=batch_size,
        precision=precision,
    )
    for indices, logits, targets, rows in passes:
        losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        sums = torch.zeros(len(indices), device=losses.device).index_add_(0, rows, losses)
        counts = torch.bincount(rows, minlength=len(indices))
        for row, index in enumerate(indices):
            results[index] = (float(sums[row]), int(counts[row]))
    return results


@_no_grad
def greedy_agreement(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Message]],
    *,
    open_ends: Sequence[bool],
    tolerance: float = 0.05,
    batch_size: int = 8,
) -> list[tuple[int, int]]:
    """Whether each conversation's assistant answer is what greedy decoding would write:
    (tokens that are the model's top choice, assistant tokens) per conversation, in one
    teacher-forced pass. A token within `tolerance` of the top logit counts (float rounding
    differs between CPUs). A finished answer's end-of-turn marker is scored too."""
    results: list[tuple[int, int]] = [(0, 0)] * len(conversations)
    passes = _assistant_batches(
        model,
        tokenizer,
        conversations,
        open_ends,
        max_len=4096,
        batch_size=batch_size,
        precision="fp32",
    )
    for indices, logits, targets, rows in passes:
        chosen = logits.gather(1, targets[:, None])[:, 0]
        top = (chosen >= logits.max(dim=1).values - tolerance).long()
        agree = torch.zeros(len(indices), dtype=torch.long, device=top.device)
        agree.index_add_(0, rows, top)
        counts = torch.bincount(rows, minlength=len(indices))
        for row, index in enumerate(indices):
            results[index] = (int(agree[row]), int(counts[row]))
    return results
