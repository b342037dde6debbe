"""Training runs a micro-batch in groups of similar length: less padding, the same gradient."""

from __future__ import annotations

import torch

from train.encoding import IGNORE_INDEX, EncodedExample, collate, length_groups
from train.inference import assistant_logits
from train.model_setup import attach_lora, load_base, load_tokenizer


def example(length: int, answer: int = 4) -> EncodedExample:
    labels = [IGNORE_INDEX] * (length - answer) + list(range(answer))
    return EncodedExample(list(range(length)), labels)


def padded(groups: list[list[EncodedExample]]) -> int:
    return sum(len(g) * max(len(e.input_ids) for e in g) for g in groups)


def test_one_long_example_gets_a_group_of_its_own() -> None:
    batch = [example(170), *(example(n) for n in (80, 82, 79, 85, 90, 88, 81))]
    groups = length_groups(batch)
    assert [len(g) for g in groups] == [7, 1]
    assert sorted(id(e) for g in groups for e in g) == sorted(map(id, batch))  # each once
    assert padded(groups) < 0.85 * padded([batch])


def test_similar_lengths_stay_one_batch_in_order() -> None:
    batch = [example(n) for n in (80, 84, 79, 83)]
    assert length_groups(batch) == [batch]
    assert length_groups([]) == [[]]


def test_grouped_gradient_equals_the_whole_batch(base_model: str) -> None:
    tokenizer = load_tokenizer(base_model)
    model, _ = load_base(base_model, device="cpu")
    model = attach_lora(model, rank=4, alpha=8, dropout=0.0, targets=("q_proj", "v_proj"))
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)  # a non-zero B: every LoRA weight has a grad
    pad_id = tokenizer.pad_token_id or 0
    batch = [example(24, 8), example(30, 6), example(96, 40), example(26, 5)]
    groups = length_groups(batch)
    assert len(groups) == 2

    def gradients(parts: list[list[EncodedExample]], tokens: int) -> dict[str, torch.Tensor]:
        model.zero_grad()
        for part in parts:
            logits, targets, _ = assistant_logits(model, collate(part, pad_id))
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum") / tokens
            loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    answer_tokens = sum(item.trained_tokens for item in batch)
    whole = gradients([batch], answer_tokens)
    grouped = gradients(groups, answer_tokens)
    assert whole and whole.keys() == grouped.keys()
    for name, grad in whole.items():  # equal up to float rounding (sums in another order)
        difference = (grad - grouped[name]).norm() / grad.norm()
        assert difference < 1e-4, (name, float(difference))
