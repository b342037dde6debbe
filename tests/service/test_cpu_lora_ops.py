"""lorag's vLLM plugin for LoRA on vLLM's CPU build (`service.engine.cpu_lora_ops`): the same
results as vLLM's own ops, and loaded by the session's real embedded engine.

vLLM's own adapter tests (`test_adapters_live.py`: vLLM's adapter answers equal peft's) run
on the engine with the plugin in place."""

from __future__ import annotations

import pytest
import torch
from vllm.lora.ops.torch_ops import lora_ops as vllm_ops

from service.engine import cpu_lora_ops
from tests.conftest import Gateway

# tokens: one request's decode step, a decode batch, a prompt; indices: one adapter, several,
# and -1 (no adapter: vLLM indexes its weights with it as Python does)
CASES = [(1, [0]), (8, [0, 1, 3, -1]), (300, [2]), (300, [0, 1, -1])]


def indices_for(tokens: int, choices: list[int]) -> torch.Tensor:
    return torch.tensor(choices, dtype=torch.long)[torch.randint(len(choices), (tokens,))]


@pytest.mark.parametrize(("tokens", "choices"), CASES)
def test_shrink_and_expand_equal_vllms_own(tokens: int, choices: list[int]) -> None:
    torch.manual_seed(tokens + len(choices))
    indices = indices_for(tokens, choices)
    x = torch.randn(tokens, 576)
    lora_a = torch.randn(4, 1, 16, 576)  # (max_loras, 1, rank, in), as vLLM stacks them
    mine, theirs = torch.zeros(tokens, 16), torch.zeros(tokens, 16)
    cpu_lora_ops.bgmv_shrink(x, lora_a, mine, indices, 0.5)
    vllm_ops.bgmv_shrink(x, lora_a, theirs, indices, 0.5)
    torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-4)

    lora_b = torch.randn(4, 1, 1600, 16)  # wider than the output: padding is cut
    base = torch.randn(tokens, 1536)
    for add in (True, False):
        mine, theirs = base.clone(), base.clone()
        cpu_lora_ops.bgmv_expand(ranked := torch.randn(tokens, 16), lora_b, mine, indices, add)
        vllm_ops.bgmv_expand(ranked, lora_b, theirs, indices, add)
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-4)
        sliced_mine, sliced_theirs = base.clone(), base.clone()
        narrow = lora_b[:, :, :512]
        cpu_lora_ops.bgmv_expand_slice(ranked, narrow, sliced_mine, indices, 512, 512, add)
        vllm_ops.bgmv_expand_slice(ranked, narrow, sliced_theirs, indices, 512, 512, add)
        torch.testing.assert_close(sliced_mine, sliced_theirs, rtol=1e-5, atol=1e-4)


def test_the_embedded_engine_runs_with_the_plugin(gateway: Gateway) -> None:
    gateway.wait_ready()
    log = (gateway.data_dir / "logs" / "vllm.log").read_text(errors="replace")
    assert f"{cpu_lora_ops.PLUGIN_NAME}: CPU LoRA ops replaced" in log
