"""Direct Preference Optimization: the loss, and the answer log-probabilities it is made of.

For a pair (prompt x, preferred answer y+, non-preferred y-), with log p the summed
log-probability of an answer's tokens under the adapter (policy) or the frozen reference:

    margin = (log p_pol(y+|x) - log p_ref(y+|x)) - (log p_pol(y-|x) - log p_ref(y-|x))
    loss   = -log sigmoid(beta * margin)

The loss falls as the adapter raises the preferred answer and lowers the other relative to
the reference; beta sets how far it may move (Rafailov et al. 2023). A pair's "accuracy" is
margin > 0: the adapter prefers y+ over y- by more than the reference did.

The reference is the model training starts from (the base, or the `--from` version), so its
log-probabilities are computed once before the first step (`train.dpo_trainer`) instead of
by a second model at every step. An answer is scored on its own tokens only (the end-of-turn
marker included); earlier assistant turns of the prompt are context (`PreferencePair.scored`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from train.encoding import EncodedExample, encode_messages
from train.inference import answer_nll, assistant_logits
from train.preferences import PreferencePair

__all__ = ["answer_logps", "dpo_loss", "encode_pair", "pair_logps"]


def dpo_loss(
    policy_preferred: torch.Tensor,
    policy_non_preferred: torch.Tensor,
    reference_preferred: torch.Tensor,
    reference_non_preferred: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss per pair, margin per pair); see the module docstring."""
    margins = (policy_preferred - reference_preferred) - (
        policy_non_preferred - reference_non_preferred
    )
    return -torch.nn.functional.logsigmoid(beta * margins), margins


def answer_logps(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The summed log-probability of each row's answer tokens (with gradient), fp32."""
    logits, targets, rows = assistant_logits(model, batch)
    token_logps = -torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    total = torch.zeros(batch["input_ids"].shape[0], device=token_logps.device)
    return total.index_add(0, rows, token_logps)


def encode_pair(
    tokenizer: Any, pair: PreferencePair, max_len: int
) -> tuple[EncodedExample, EncodedExample] | None:
    """Both conversations of a pair, encoded; None when either answer is cut to nothing."""
    preferred = pair.scored(pair.preferred)
    non_preferred = pair.scored(pair.non_preferred)
    first = encode_messages(tokenizer, preferred.conversation, max_len)
    second = encode_messages(tokenizer, non_preferred.conversation, max_len)
    return None if first is None or second is None else (first, second)


def pair_logps(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[PreferencePair],
    *,
    max_len: int,
    batch_size: int = 8,
    precision: str = "fp32",
) -> list[tuple[float, float]]:
    """(log p(preferred), log p(non-preferred)) of each pair under `model` as it is now
    (no gradient, eval mode): the reference before training, the validation and the gate."""
    conversations = [pair.scored(pair.preferred).conversation for pair in pairs]
    conversations += [pair.scored(pair.non_preferred).conversation for pair in pairs]
    scores = answer_nll(
        model,
        tokenizer,
        conversations,
        max_len=max_len,
        batch_size=batch_size,
        precision=precision,
    )
    count = len(pairs)
    return [(-scores[i][0], -scores[count + i][0]) for i in range(count)]
