"""`lorag adapters export`: the merged folder and the GGUF files answer like base+adapter.

One factory adapter (every linear layer, rank 8, B small enough that the answers change but
stay sentences: where a model is unsure, rounding flips tokens, so a garbling adapter would
measure noise) is imported into a fresh data directory and exported through the CLI, twice:
the merged folder (float32) with the f16 GGUF, then the q8_0 GGUF - in the background while
the gateway tests run (tests/train/export_job.py). Then, greedy, float32,
16 tokens on a few prompts:

1. the merged model answers exactly like peft's base+adapter, and unlike the base;
2. the f16 GGUF, loaded back by transformers (which undoes llama.cpp's q/k row order), answers
   exactly like the merged model, and its tokenizer encodes the same ids; the q8_0 GGUF is
   quantized, so it is held to teacher-forced top-1 agreement with the merged answers
   (measured on the 20 control prompts, 505 answer tokens: f16 505, q8_0 488 (96.6%));
3. the merged model answers exactly like vLLM serving the base with the adapter (the session
   gateway's engine, float32).

Measured outside the suite on those 20 prompts at 32 tokens: merged float32 and f16 GGUF
20/20 answers identical to peft's; merged bfloat16 (the default `--dtype base` for the
bundled model) 17/20, q8_0 11/20 (the first flipped token changes the rest).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from cli.main import main
from lorag.chat_template import DEFAULT_SYSTEM_PROMPT
from lorag.settings import BUNDLED_MODEL_NAME
from tests.conftest import Gateway

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three uses of copper.",
]
PROMPTS = [[{"role": "user", "content": question}] for question in QUESTIONS]
MAX_TOKENS = 16


@dataclass(frozen=True)
class Exported:
    adapter_dir: Path  # the registry's stored copy
    sha256: str
    merged: Path
    f16: Path
    q8: Path
    stderr: str


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """The suite runs vLLM and training beside these tests: two OpenMP threads waiting for a
    busy core made a forward pass of the bundled model ~5x slower than one thread (2.3 s
    against 0.46 s, measured with another test run on the machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def _gguf_name_map_built_once() -> Iterator[None]:
    """transformers' GGUF loader asks gguf for the same tensor-name map once per module of the
    model (397 times, ~6 s of each load here); the map depends only on its arguments."""
    import gguf

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gguf, "get_tensor_name_map", functools.cache(gguf.get_tensor_name_map))
        yield


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def exported(export_commands: dict[str, Any]) -> Exported:
    """The background export (tests/train/export_job.py): every command succeeded."""
    results, paths = export_commands["results"], export_commands["paths"]
    for name, done in results.items():
        assert done["code"] == 0, (name, done["err"])
    merged, f16 = Path(paths["merged"]), Path(paths["f16"])
    assert f"wrote {merged} (" in results["export"]["out"]
    assert f"wrote {f16} (" in results["export"]["out"]
    stored = Path(json.loads(results["show"]["out"])["path"])
    sha256 = json.loads(results["import"]["out"])["sha256"]
    return Exported(stored, sha256, merged, f16, Path(paths["q8"]), results["export"]["err"])


def _load(path: Path, gguf_file: str | None = None, tokenizer_from: Path | None = None):
    """(model in float32, tokenizer): from a folder, or a GGUF file in it (tokenizer too,
    unless `tokenizer_from` names a folder: building it from a GGUF takes seconds)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf_file, dtype=torch.float32)
    if tokenizer_from is not None:
        return model, AutoTokenizer.from_pretrained(tokenizer_from)
    return model, AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)


def _answers(model, tokenizer) -> list[str]:
    from train.inference import greedy_generate

    return [g.text for g in greedy_generate(model, tokenizer, PROMPTS, max_new_tokens=MAX_TOKENS)]


@pytest.fixture(scope="module")
def merged_answers(exported: Exported) -> list[str]:
    return _answers(*_load(exported.merged))


def test_merged_answers_equal_base_plus_adapter_and_differ_from_base(
    exported: Exported, merged_answers: list[str], base_model_dir: Path
) -> None:
    from train.model_setup import load_adapter

    base, tokenizer = _load(base_model_dir)
    base_answers = _answers(base, tokenizer)
    assert _answers(load_adapter(base, exported.adapter_dir), tokenizer) == merged_answers
    assert all(a != b for a, b in zip(merged_answers, base_answers, strict=True)), base_answers

    stamp = json.loads((exported.merged / "lorag-export.json").read_text())
    assert {k: stamp[k] for k in ("adapter", "adapter_sha256", "owner", "base_model", "dtype")} == {
        "adapter": "support@v1",
        "adapter_sha256": exported.sha256,
        "owner": "acme",
        "base_model": BUNDLED_MODEL_NAME,
        "dtype": "float32",
    }
    template = (base_model_dir / "chat_template.jinja").read_text()
    assert (exported.merged / "chat_template.jinja").read_text() == template
    assert "owned by tenant acme" in exported.stderr


def test_f16_gguf_loads_back_with_the_merged_answers_and_tokenizer(
    exported: Exported, merged_answers: list[str], base_model_dir: Path
) -> None:
    from transformers import AutoTokenizer

    model, tokenizer = _load(exported.f16.parent, exported.f16.name)
    assert _answers(model, tokenizer) == merged_answers
    original = AutoTokenizer.from_pretrained(base_model_dir)
    texts = [
        "Hello world! 123 café  two spaces\n\ttab",
        original.apply_chat_template(PROMPTS[0], tokenize=False, add_generation_prompt=True),
    ]
    assert [tokenizer(t).input_ids for t in texts] == [original(t).input_ids for t in texts]
    assert tokenizer.chat_template == original.chat_template
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")


def test_q8_0_gguf_holds_the_merged_weights_in_8_bits(exported: Exported) -> None:
    """The q8_0 file's weights, dequantized, are the merged model's to 8-bit precision (a
    wrong layout or scale would be far off). Its answers (96.6% of next tokens the same on
    the control prompts) are measured in docs/benchmarks.md, not here: loading it through
    transformers costs ~11 s."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    tensors = {t.name: t for t in GGUFReader(exported.q8).tensors}
    types = {name: t.tensor_type for name, t in tensors.items()}
    assert types["blk.0.attn_q.weight"] == GGMLQuantizationType.Q8_0
    assert types["token_embd.weight"] == GGMLQuantizationType.Q8_0
    assert types["blk.0.attn_norm.weight"] == GGMLQuantizationType.F32
    assert "output.weight" not in types  # tied to token_embd
    assert exported.q8.stat().st_size < 0.6 * exported.f16.stat().st_size

    merged = load_file(str(exported.merged / "model.safetensors"))
    down = tensors["blk.3.ffn_down.weight"]  # no row permutation (q/k have one)
    values = dequantize(np.asarray(down.data), down.tensor_type).reshape(
        merged["model.layers.3.mlp.down_proj.weight"].shape
    )
    reference = merged["model.layers.3.mlp.down_proj.weight"].astype(np.float32)
    scale = np.abs(reference).max(axis=1, keepdims=True)  # q8_0: per block of 32; a bound
    assert np.all(np.abs(values - reference) <= scale / 127 + 1e-6)
    assert np.abs(values - reference).mean() < 0.02 * np.abs(reference).mean()


def test_merged_answers_equal_vllm_serving_base_plus_adapter(
    gw: Gateway, exported: Exported, merged_answers: list[str]
) -> None:
    name = f"export-check-{exported.sha256[:12]}"
    loaded = httpx.post(
        f"{gw.vllm_url()}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(exported.adapter_dir)},
        headers=gw.vllm_headers(),
        timeout=60,
    )
    assert loaded.status_code == 200 or b"has already been loaded" in loaded.content, loaded.text

    def served(prompt: list[dict[str, str]]) -> str:
        answer = httpx.post(
            f"{gw.vllm_url()}/v1/chat/completions",
            json={"model": name, "messages": prompt, "temperature": 0, "max_tokens": MAX_TOKENS},
            headers=gw.vllm_headers(),
            timeout=120,
        )
        answer.raise_for_status()
        return str(answer.json()["choices"][0]["message"]["content"]).strip()

    assert [served(prompt) for prompt in PROMPTS] == merged_answers


def test_qk_rows_in_llama_cpp_order(base_model_dir: Path) -> None:
    """Our q/k rows match the ones llama.cpp's own converter wrote into the bundled GGUF
    (which the bundled folder was made from, rounded to bf16 on the way)."""
    from gguf import GGUFReader, dequantize
    from safetensors import safe_open
    from transformers import AutoConfig

    from lorag.base_model import bundled_gguf_path
    from train.gguf_export import _tensors

    names = [f"model.layers.0.self_attn.{p}_proj.weight" for p in "qk"]
    with safe_open(base_model_dir / "model.safetensors", framework="pt") as weights:
        wanted = {name: weights.get_tensor(name) for name in names}
    config = AutoConfig.from_pretrained(base_model_dir)
    ours = {name: data for name, data, _ in _tensors(wanted, config, "f16")}
    theirs = {
        t.name: dequantize(t.data, t.tensor_type)
        for t in GGUFReader(bundled_gguf_path()).tensors
        if t.name in ours
    }
    assert set(theirs) == {"blk.0.attn_q.weight", "blk.0.attn_k.weight"}
    for name, data in ours.items():
        assert np.allclose(data.astype(np.float32), theirs[name], rtol=1 / 64, atol=1e-3), name


def test_modelfile_renders_conversations_like_the_chat_template(
    exported: Exported, base_model_dir: Path
) -> None:
    """Ollama puts SYSTEM first when a request has no system message, then the TEMPLATE runs
    over the messages; rendered here by hand (its three constructs) for one conversation."""
    from transformers import AutoTokenizer

    text = (exported.f16.parent / "Modelfile").read_text()
    assert text.startswith("FROM ./support.f16.gguf\n")
    assert f'SYSTEM """{DEFAULT_SYSTEM_PROMPT}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    head, rest = template.split("{{- range .Messages }}")
    body, tail = rest.split("{{ end }}")
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    with_system = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, *conversation]
    rendered = head + "".join(
        body.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"])
        for m in with_system
    )
    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    expected = tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True
    )
    assert rendered + tail == expected


def test_refusals_come_before_any_work(
    tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("keep me")
    (tmp_path / "Modelfile").write_text("mine")
    cases = {
        ("--merged", str(taken)): "exists and is not empty: pass --overwrite",
        ("--merged", str(taken), "--overwrite"): "is not an earlier export",
        ("--gguf", str(tmp_path / "new.gguf")): "Modelfile exists: pass --overwrite",
        (): "nothing to export",
        ("--merged", str(tmp_path / "new")): "adapter 'support' not found",
    }
    for options, message in cases.items():
        code, _, err = _cli("adapters", "export", "support", *options)
        assert (code, message in err) == (2, True), err
    assert (taken / "x").read_text() == "keep me"


def test_pre_tokenizer_names_are_known_or_refused() -> None:
    """llama.cpp splits text before BPE by a named rule: a tokenizer whose rule has no name
    here is refused, not exported with a guess that tokenizes differently."""
    from train.errors import InvalidOption
    from train.gguf_export import _pre_tokenizer_name

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    digits = {"type": "Digits", "individual_digits": True}
    assert _pre_tokenizer_name(byte_level) == "gpt-2"
    assert _pre_tokenizer_name({"type": "Sequence", "pretokenizers": [digits, byte_level]}) == (
        "smollm"
    )
    with pytest.raises(InvalidOption, match="pre-tokenizer"):
        _pre_tokenizer_name({"type": "Metaspace", "replacement": "▁"})
