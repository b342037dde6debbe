"""The base model's own greedy answers to prompt lists, generated once and cached on disk.

Two users: the general mix (its answers become training examples that keep the adapter close
to the base on everyday prompts) and the gate (the base's answers to the control prompts are
what the adapter is compared against). The cache file name is a hash of the base model's
fingerprint, the prompts and the generation settings, so a different model or prompt file
never reuses stale answers.

The fingerprint names the model by its content (config and weight files), not by where it
lies, so answers made on one machine are valid on another. lorag ships the bundled model's
answers to its own general and control prompts in `train/data/base_answers/` (made with
`python -m train.base_answers`): the first run on the bundled model reads them instead of
generating them (~150 s of CPU on a 2-core AVX2 machine). The suite checks that each shipped
answer is still the model's own greedy answer (tests/train/test_base_answers.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from train.examples import Example, Message
from train.inference import Generation
from train.prompt_sets import PromptItem

__all__ = [
    "SHIPPED_ANSWERS",
    "base_fingerprint",
    "cache_file_name",
    "cached_base_answers",
    "general_mix_examples",
    "read_answers",
]

SHIPPED_ANSWERS = Path(__file__).resolve().parent / "data" / "base_answers"
"""The bundled model's answers to lorag's own prompt lists (read-only, looked up after the
user's cache)."""

_SAMPLE_BYTES = 2**20  # of each weight file's start and end: a cheap content digest

GenerateFn = Callable[[list[list[Message]]], list[Generation]]


def base_fingerprint(base_model: str) -> str:
    """A digest naming the base model by content: for a folder, its config and each weight
    file's name, size and first and last MiB (the same model copied elsewhere keeps it);
    otherwise the hub id itself."""
    folder = Path(base_model)
    if not folder.is_dir():
        return hashlib.sha256(base_model.encode()).hexdigest()
    digest = hashlib.sha256(b"folder")
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(_SAMPLE_BYTES))
            handle.seek(max(0, size - _SAMPLE_BYTES))
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


def cache_file_name(
    kind: str, prompts: list[list[Message]], base_key: str, settings: dict[str, object]
) -> str:
    """The cache file of these answers: a hash of the model, the prompts and the settings."""
    key_source = {"base": base_key, "prompts": prompts, **settings}
    key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:24]
    return f"{kind}-{key}.jsonl"


def read_answers(path: Path) -> list[Generation]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [Generation(r["text"], bool(r["finished"]), int(r["tokens"])) for r in rows]


def cached_base_answers(
    prompts: list[list[Message]],
    *,
    kind: str,
    cache_dir: Path,
    base_key: str,
    settings: dict[str, object],
    generate: GenerateFn,
    shipped: Path | None = SHIPPED_ANSWERS,
) -> list[Generation]:
    """The base's answers to `prompts` (conversations): from the cache, from the answers
    shipped with lorag, or made with `generate` and stored in the cache.

    `settings` (max_new_tokens, device...) is part of the key; `generate` is only called
    on a miss, so the caller can load the model lazily.
    """
    name = cache_file_name(kind, prompts, base_key, settings)
    path = cache_dir / name
    for found in (path, shipped / name if shipped is not None else None):
        if found is not None and found.is_file():
            answers = read_answers(found)
            if len(answers) == len(prompts):
                return answers
    answers = generate(prompts)
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=cache_dir, prefix=f".{kind}-", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        for answer in answers:
            row = {"text": answer.text, "finished": answer.finished, "tokens": answer.tokens}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.chmod(temp, 0o644)
    os.replace(temp, path)
    return answers


def general_mix_examples(
    prompts: list[PromptItem],
    answers: list[Generation],
    *,
    limit: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Training examples made of the base's own answers (cut answers stay open-ended);
    with `limit`, a seeded sample of that many."""
    examples = [
        Example(
            (
                {"role": "user", "content": item.prompt},
                {"role": "assistant", "content": answer.text},
            ),
            source="general",
            open_end=not answer.finished,
        )
        for item, answer in zip(prompts, answers, strict=True)
        if answer.text.strip()
    ]
    if limit is not None and limit < len(examples):
        examples = random.Random(seed).sample(examples, limit)
    return examples
