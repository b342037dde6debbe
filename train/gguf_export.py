"""A merged Llama model as one GGUF file: what llama.cpp, Ollama and LM Studio load.

Written with the `gguf` package (llama.cpp's own reader/writer library) in three parts:

- Hyperparameters under `llama.*`: context length, widths, block count, head counts, rope
  base, RMS epsilon, vocabulary size. Only what llama.cpp's plain Llama graph runs is
  accepted: no rope scaling, no biases (`check_exportable` says why not, before any work).
- The tokenizer, from the tokenizer's own `tokenizer.json`: byte-level BPE ("gpt2" in GGUF
  terms) with its tokens, token types (added special tokens are CONTROL, so llama.cpp keeps
  `<|im_end|>` whole), merges, special ids and the chat template. `tokenizer.ggml.pre` names
  how llama.cpp splits text before BPE; it is read off the pre-tokenizer, and one this file
  cannot name is refused rather than guessed (a wrong guess tokenizes differently, silently).
- The tensors, named the GGUF way (gguf's `TensorNameMap`). An HF Llama checkpoint keeps each
  attention head's rotary dimensions as two halves (`rotate_half`); llama.cpp rotates adjacent
  pairs, so the q and k rows of each head are interleaved, as llama.cpp's own converter does.
  transformers' GGUF loader undoes exactly that: tests/train/test_export.py loads the file
  back and gets the merged model's answers. With tied embeddings only `token_embd` is
  written; llama.cpp then uses it as the output layer too.

Types: `f16` stores every matrix in float16; `q8_0` stores matrices in blocks of 32 int8 with
one float16 scale per block (~8.5 bits a weight; a matrix whose rows are not a multiple of 32
stays f16). Norm weights (1-D) stay float32 in both: they are tiny and scale every activation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from train.errors import InvalidOption

__all__ = ["check_exportable", "write_gguf"]

# the types `train.export.GGUF_TYPES` offers
_FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
_Q8_BLOCK = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
_ARCH = gguf.MODEL_ARCH.LLAMA


def check_exportable(config: Any) -> None:
    """Refuse (InvalidOption) a model this writer would get wrong: checked from the base's
    config alone, before the model is loaded."""
    problems = []
    if getattr(config, "model_type", None) != "llama":
        problems.append(f"architecture {getattr(config, 'model_type', None)!r} (only llama)")
    rope_type = _rope_parameters(config).get("rope_type", "default")
    if rope_type != "default":
        problems.append(f"rope scaling {rope_type!r} (only plain rope)")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("bias tensors in attention or MLP")
    if problems:
        raise InvalidOption(
            "cannot write this base model as GGUF: " + "; ".join(problems), param="gguf"
        )


def write_gguf(
    model: Any,
    tokenizer: Any,
    path: Path,
    *,
    gguf_type: str,
    name: str,
    provenance: Mapping[str, str],
    progress: Callable[[str], None],
) -> None:
    """Write `model` (a merged `LlamaForCausalLM`, float32) and its tokenizer to `path`.

    The file is written beside `path` under a temporary name and renamed into place, so a
    crash never leaves half a file under the real name. `provenance` goes into `lorag.*`
    metadata keys (llama.cpp ignores keys it does not know)."""
    if gguf_type not in _FILE_TYPES:
        raise InvalidOption(f"GGUF type {gguf_type!r}: one of {sorted(_FILE_TYPES)}", param="gguf")
    config = model.config
    check_exportable(config)
    staging = path.with_name(f".{path.name}.partial")
    writer = gguf.GGUFWriter(str(staging), arch=gguf.MODEL_ARCH_NAMES[_ARCH])
    try:
        rows = int(model.get_input_embeddings().weight.shape[0])  # the vocabulary, padded
        _add_hyperparameters(writer, config, name, _FILE_TYPES[gguf_type], vocab_size=rows)
        _add_tokenizer(writer, tokenizer, rows=rows)
        for key, value in sorted(provenance.items()):
            writer.add_string(f"lorag.{key}", value)
        progress(f"converting tensors to {gguf_type}")
        for tensor_name, data, raw_type in _tensors(model.state_dict(), config, gguf_type):
            writer.add_tensor(tensor_name, data, raw_dtype=raw_type)
        progress(f"writing {path.name}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(staging, path)
    finally:
        writer.close()
        staging.unlink(missing_ok=True)


# --- hyperparameters ----------------------------------------------------------------------
def _rope_parameters(config: Any) -> dict[str, Any]:
    """transformers 5 keeps rope settings in `rope_parameters`; older configs in `rope_theta`
    and `rope_scaling`."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    merged = dict(params) if isinstance(params, dict) else {}
    if "rope_theta" not in merged and getattr(config, "rope_theta", None) is not None:
        merged["rope_theta"] = config.rope_theta
    return merged


def _head_dim(config: Any) -> int:
    return int(
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )


def _add_hyperparameters(
    writer: gguf.GGUFWriter, config: Any, name: str, file_type: int, *, vocab_size: int
) -> None:
    writer.add_name(name)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(int(config.num_key_value_heads))
    writer.add_rope_freq_base(float(_rope_parameters(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(vocab_size)
    head_dim = _head_dim(config)
    writer.add_rope_dimension_count(head_dim)
    if head_dim * config.num_attention_heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


# --- tokenizer ----------------------------------------------------------------------------
def _pre_tokenizer_name(spec: Mapping[str, Any] | None) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE.

    Two shapes are known: GPT-2's byte-level split alone ("gpt-2"), and single digits split
    off first, then GPT-2's split (SmolLM's "smollm")."""

    def byte_level_regex(step: Mapping[str, Any]) -> bool:
        return step.get("type") == "ByteLevel" and bool(step.get("use_regex", True))

    if spec is not None and byte_level_regex(spec):
        return "gpt-2"
    steps = spec.get("pretokenizers", []) if spec and spec.get("type") == "Sequence" else []
    if (
        len(steps) == 2
        and steps[0].get("type") == "Digits"
        and steps[0].get("individual_digits")
        and byte_level_regex(steps[1])
    ):
        return "smollm"
    raise InvalidOption(
        f"cannot name this tokenizer's pre-tokenizer for llama.cpp: {json.dumps(spec)[:200]}",
        param="gguf",
    )


def _add_tokenizer(writer: gguf.GGUFWriter, tokenizer: Any, *, rows: int) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InvalidOption("the base model's tokenizer has no tokenizer.json", param="gguf")
    spec = json.loads(backend.to_str())
    bpe = spec.get("model", {})
    decoder = spec.get("decoder") or {}
    if bpe.get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise InvalidOption(
            "only byte-level BPE tokenizers (GPT-2 style) can be written as GGUF; this one is "
            f"{bpe.get('type')} with a {decoder.get('type')} decoder",
            param="gguf",
        )
    tokens: list[str | None] = [None] * rows
    types = [gguf.TokenType.NORMAL] * rows
    entries: list[tuple[str, int, bool | None]] = [
        (token, index, None) for token, index in bpe["vocab"].items()
    ]
    entries += [(t["content"], t["id"], bool(t["special"])) for t in spec.get("added_tokens", [])]
    for token, index, special in entries:
        if index >= rows:
            raise InvalidOption(
                f"token {token!r} has id {index}, past the {rows} embedding rows", param="gguf"
            )
        tokens[index] = token
        if special is not None:
            types[index] = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
    for index in range(rows):
        if tokens[index] is None:  # embedding rows with no token (a vocabulary padded up)
            tokens[index] = f"[PAD{index}]"
            types[index] = gguf.TokenType.UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe.get("merges", [])]

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer_name(spec.get("pre_tokenizer")))
    writer.add_token_list([token or "" for token in tokens])
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    special_ids = {
        writer.add_bos_token_id: tokenizer.bos_token_id,
        writer.add_eos_token_id: tokenizer.eos_token_id,
        writer.add_unk_token_id: tokenizer.unk_token_id,
        writer.add_pad_token_id: tokenizer.pad_token_id,
    }
    for add, token_id in special_ids.items():
        if token_id is not None:
            add(int(token_id))
    # whether llama.cpp should put BOS in front of a prompt: whatever the tokenizer itself does
    probe = tokenizer("a").input_ids
    writer.add_add_bos_token(bool(probe) and probe[0] == tokenizer.bos_token_id)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


# --- tensors ------------------------------------------------------------------------------
def _interleave_rotary_halves(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from (first half, second half) to alternating pairs."""
    rows, cols = weight.shape
    per_head = rows // heads
    halves = weight.reshape(heads, 2, per_head // 2, cols)
    return np.ascontiguousarray(halves.transpose(0, 2, 1, 3).reshape(rows, cols))


def _tensors(
    state: Mapping[str, torch.Tensor], config: Any, gguf_type: str
) -> Iterator[tuple[str, np.ndarray, gguf.GGMLQuantizationType | None]]:
    """(GGUF name, data, raw type for quantized bytes or None) for every weight to write."""
    names = gguf.get_tensor_name_map(_ARCH, int(config.num_hidden_layers))
    rotary_heads = {
        "q_proj.weight": int(config.num_attention_heads),
        "k_proj.weight": int(config.num_key_value_heads),
    }
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InvalidOption(f"tensor {hf_name} has no GGUF name for llama", param="gguf")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        heads = rotary_heads.get(".".join(hf_name.split(".")[-2:]))
        if heads is not None:
            data = _interleave_rotary_halves(data, heads)
        if data.ndim == 1:
            yield gguf_name, data, None
        elif gguf_type == "q8_0" and data.shape[-1] % _Q8_BLOCK == 0:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            yield gguf_name, quantized, gguf.GGMLQuantizationType.Q8_0
        else:
            yield gguf_name, data.astype(np.float16), None
