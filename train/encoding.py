"""Turning chat examples into token ids with a loss mask on the assistant's words only.

The base model's own chat template renders the conversation. Each assistant turn's span is
found by rendering the conversation up to that turn twice (with the generation prompt, and
with the turn itself); tokens whose characters fall inside a span keep their id as label,
everything else (system, user, template markup, padding) gets -100 and costs no loss. The
end-of-turn marker (`<|im_end|>` for ChatML) lies inside the span, so the model learns to stop.
An assistant turn with `weight` 0 is context only. A conversation led by a `tools` entry
(`Example.conversation`) renders with those tools, as vLLM renders a request's `tools`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from train.errors import InvalidOption
from train.examples import TOOLS_ROLE, Message

__all__ = [
    "IGNORE_INDEX",
    "EncodedExample",
    "collate",
    "encode_messages",
    "length_groups",
    "render_prompt",
]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside assistant spans
    truncated: bool = False

    @property
    def trained_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _render(tokenizer: Any, conversation: Sequence[Message], **options: Any) -> str:
    """The chat template's text for a conversation, with its leading `tools` entry (if any)
    passed as the template's `tools`."""
    messages = list(conversation)
    tools = messages.pop(0)["tools"] if messages and messages[0]["role"] == TOOLS_ROLE else None
    text: str = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **options)
    return text


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The text a generation starts from: the conversation plus the assistant header."""
    return _render(tokenizer, messages, add_generation_prompt=True)


def _assistant_spans(
    tokenizer: Any, messages: Sequence[Message], open_end: bool
) -> tuple[str, list[tuple[int, int]]]:
    full = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight") == 0:
            continue
        before = render_prompt(tokenizer, messages[:index])
        through = _render(tokenizer, messages[: index + 1])
        if not (full.startswith(before) and full.startswith(through)):
            raise InvalidOption(
                "the base model's chat template does not render conversations prefix by prefix; "
                "cannot locate the assistant turns to train on",
                param="base_model",
            )
        end = len(through)
        content = message.get("content") or ""
        last = index == len(messages) - 1
        if open_end and last and content and full[len(before) :].startswith(content):
            end = len(before) + len(content)  # a cut answer: do not teach stopping there
        spans.append((len(before), end))
    return full, spans


def encode_messages(
    tokenizer: Any, messages: Sequence[Message], max_len: int, *, open_end: bool = False
) -> EncodedExample | None:
    """Ids and labels for one conversation; None when truncation leaves nothing to learn.

    `open_end`: the last answer was cut short (a length-limited generation), so its
    end-of-turn marker is not a target.
    """
    text, spans = _assistant_spans(tokenizer, messages, open_end)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    for position, (start, end) in enumerate(encoded["offset_mapping"]):
        if any(span_start <= start < span_end for span_start, span_end in spans) and end > start:
            labels[position] = ids[position]
    truncated = len(ids) > max_len
    example = EncodedExample(ids[:max_len], labels[:max_len], truncated)
    return example if example.trained_tokens else None


def collate(batch: Sequence[EncodedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask and labels (-100 on padding)."""
    width = max(len(example.input_ids) for example in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        length = len(example.input_ids)
        input_ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        attention[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def length_groups(
    batch: Sequence[EncodedExample], min_saving: float = 0.15
) -> list[list[EncodedExample]]:
    """The batch as one or two groups of similar length, to be run one after the other.

    A right-padded batch costs its longest example times its size: one long example among
    short ones makes most of the batch padding. Sorted by length and cut where the padded
    total is smallest, two groups cost less; they are kept only when that saves at least
    `min_saving` of the padded tokens (a second, smaller pass has its own overhead). The
    examples and the loss over them are the same, whatever the grouping.
    """
    ordered = sorted(batch, key=lambda example: len(example.input_ids))
    lengths = [len(example.input_ids) for example in ordered]
    whole = len(lengths) * lengths[-1] if lengths else 0
    best_cost, best_cut = whole, 0
    for cut in range(1, len(lengths)):
        cost = cut * lengths[cut - 1] + (len(lengths) - cut) * lengths[-1]
        if cost < best_cost:
            best_cost, best_cut = cost, cut
    if not best_cut or best_cost > whole * (1 - min_saving):
        return [list(batch)]
    return [ordered[:best_cut], ordered[best_cut:]]
