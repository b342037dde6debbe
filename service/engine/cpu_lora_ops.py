"""A vLLM plugin: LoRA on vLLM's CPU build without one copy of the adapter weights per token.

vLLM's CPU LoRA path (`vllm.lora.ops.torch_ops`, used by `PunicaWrapperCPU`) applies each
LoRA matrix with `weights[token_indices]`: a copy of the adapter's matrix for every token of
the batch, then a batched product. For a 500-token prompt that is a 500-fold copy of every
LoRA matrix of every layer; in a decode batch of 32 it is 32 copies per step. Here each
adapter's tokens are gathered and multiplied by its matrix once: the same products, the same
semantics (indices as vLLM gives them, including -1), no copies. Where the batch holds only a
few tokens per adapter (decoding across many adapters) vLLM's gather is cheaper, and is kept.
Measured on one core of an AMD EPYC (Zen 4), rank 16: shrink of 500 tokens 5.4 -> 0.44 ms
(576 wide) and 30 -> 0.9 ms (1536 wide); a decode batch of 32: 0.30 -> 0.13 ms; one token:
unchanged.
End to end in `bench/adapters.py` and `docs/benchmarks.md`.

vLLM calls `register` in each of its processes (entry point group `vllm.general_plugins`);
it changes nothing unless vLLM runs on a CPU. lorag's embedded engine loads it unless
`LORAG_VLLM_CPU_LORA_OPS=false` (then `VLLM_PLUGINS` names no plugin); a vLLM started by
hand loads it where lorag is installed beside it, unless `VLLM_PLUGINS` leaves it out.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["PLUGIN_NAME", "bgmv_expand", "bgmv_expand_slice", "bgmv_shrink", "register"]

PLUGIN_NAME = "lorag-cpu-lora"
"""The plugin's entry point name (pyproject.toml), as `VLLM_PLUGINS` names it."""

_TOKENS_PER_ADAPTER_TO_LOOP = 8
"""Below this many tokens per adapter in the batch, vLLM's gather is cheaper than a loop of
products (bench/adapters.py: 8 streams over 8 adapters, 41 tok/s looping, 60 gathering)."""

log = logging.getLogger("vllm.plugins.lorag")  # vLLM's handler writes it to its log


def _per_adapter(inputs: Any, weights: Any, indices: Any, dtype: Any) -> Any:
    """(tokens, out): each token's row times the matrix `weights[index]` of its adapter."""
    import torch

    matrices = weights.squeeze(1) if weights.dim() == 4 else weights
    rows = inputs.to(dtype=dtype)
    result = torch.empty((rows.shape[0], matrices.shape[1]), dtype=dtype, device=rows.device)
    if rows.shape[0] == 0:
        return result
    first = indices[0]
    if bool((indices == first).all()):  # one adapter for the whole batch: one product
        torch.matmul(rows, matrices[first].to(dtype=dtype).T, out=result)
        return result
    adapters = indices.unique()
    if rows.shape[0] < _TOKENS_PER_ADAPTER_TO_LOOP * adapters.numel():
        # a few tokens each for many adapters (a decode batch across adapters): one gather of
        # a matrix per token, vLLM's way, costs less than a product per adapter
        return torch.einsum("bi,boi->bo", rows, matrices[indices].to(dtype=dtype))
    for index in adapters.tolist():
        chosen = (indices == index).nonzero().squeeze(1)
        result[chosen] = rows[chosen] @ matrices[index].to(dtype=dtype).T
    return result


def bgmv_shrink(
    inputs: Any,
    lora_a_weights: Any,
    output_tensor: Any,
    lora_indices_tensor: Any,
    scaling: float = 1.0,
) -> None:
    outputs = _per_adapter(inputs, lora_a_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs


def bgmv_expand(
    inputs: Any,
    lora_b_weights: Any,
    output_tensor: Any,
    lora_indices_tensor: Any,
    add_inputs: bool = True,
) -> None:
    outputs = _per_adapter(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    # the adapter and the model may pad their outputs differently
    common = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common] += outputs[:limit, :common]
    else:
        output_tensor[:, :common] = outputs[:limit, :common]


def bgmv_expand_slice(
    inputs: Any,
    lora_b_weights: Any,
    output_tensor: Any,
    lora_indices_tensor: Any,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = True,
) -> None:
    outputs = _per_adapter(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset : slice_offset + slice_size] += outputs
    else:
        output_tensor[:, slice_offset : slice_offset + slice_size] = outputs


_OPS = {
    "bgmv_shrink": bgmv_shrink,
    "bgmv_expand": bgmv_expand,
    "bgmv_expand_slice": bgmv_expand_slice,
}


def register() -> None:
    """Put these ops where vLLM's CPU LoRA path looks them up (its `sgmv_*` prefill ops call
    the `bgmv_*` ones); on any other platform, do nothing."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    import vllm.lora.ops.torch_ops as package
    import vllm.lora.ops.torch_ops.lora_ops as ops
    import vllm.lora.punica_wrapper.punica_cpu as punica

    for module in (package, ops, punica):
        for name, function in _OPS.items():
            if hasattr(module, name):
                setattr(module, name, function)
    log.info("%s: CPU LoRA ops replaced by per-adapter products", PLUGIN_NAME)
