"""The base model's own greedy answers to prompt lists, generated once and cached on disk.

Two users: the general mix (its answers become training examples that keep the adapter close
to the base on everyday prompts) and the gate (the base's answers to the control prompts are
what the adapter is compared against). The cache file name is a hash of the base model's
fingerprint, the prompts and the generation settings, so a different model or prompt file
never reuses stale answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from train.examples import Example
from train.inference import Generation
from train.prompt_sets import PromptItem

__all__ = ["base_fingerprint", "cached_base_answers", "general_mix_examples"]

GenerateFn = Callable[[list[list[dict[str, str]]]], list[Generation]]


def base_fingerprint(base_model: str) -> str:
    """A digest naming the base model: its id/path plus its config and weight file sizes."""
    digest = hashlib.sha256(base_model.encode())
    folder = Path(base_model)
    if folder.is_dir():
        config = folder / "config.json"
        if config.is_file():
            digest.update(config.read_bytes())
        for weights in sorted(folder.glob("*.safetensors")):
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def cached_base_answers(
    prompts: list[list[dict[str, str]]],
    *,
    kind: str,
    cache_dir: Path,
    base_key: str,
    settings: dict[str, object],
    generate: GenerateFn,
) -> list[Generation]:
    """The base's answers to `prompts` (conversations): from the cache, or made with
    `generate` and stored.

    `settings` (max_new_tokens, device...) is part of the key; `generate` is only called
    on a cache miss, so the caller can load the model lazily.
    """
    key_source = {"base": base_key, "prompts": prompts, **settings}
    key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir / f"{kind}-{key}.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        if len(rows) == len(prompts):
            return [Generation(r["text"], bool(r["finished"]), int(r["tokens"])) for r in rows]
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
