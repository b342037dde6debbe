"""From a user's training file to a clean, split dataset.

`prepare_data` = parse and validate every record (`data_formats`), replace personal data with
placeholders (`scrub`, on by default), drop exact duplicates, then a seeded shuffle splits
train / validation (default 90/10). The `DataSummary` it returns carries every count, and the
file's sha256, for the run card.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

from train.data_formats import load_examples
from train.errors import InvalidOption
from train.examples import DataSummary, Example, PreparedData
from train.scrub import scrub_example

__all__ = ["file_sha256", "prepare_data", "split_examples"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_examples(
    examples: list[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Seeded shuffle, then the first `val_fraction` (at least one, if any) is validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidOption(
            f"val_fraction must be in [0, 1), got {val_fraction}", param="val_fraction"
        )
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(shuffled) >= 2:
        n_val = 1
    n_val = min(n_val, len(shuffled) - 1)
    return shuffled[n_val:], shuffled[:n_val]


def prepare_data(
    path: Path,
    *,
    data_format: str = "auto",
    prompt_column: str | None = None,
    completion_column: str | None = None,
    scrub: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> PreparedData:
    """Validate, scrub, deduplicate and split `path`; raises `InvalidData` listing bad lines."""
    examples, fmt = load_examples(
        path, data_format, prompt_column=prompt_column, completion_column=completion_column
    )
    counts: Counter[str] = Counter()
    if scrub:
        examples = [scrub_example(example, counts) for example in examples]
    unique: dict[str, Example] = {}
    for example in examples:
        unique.setdefault(example.key(), example)
    train, validation = split_examples(list(unique.values()), val_fraction, seed)
    summary = DataSummary(
        file=path.name,
        sha256=file_sha256(path),
        format=fmt,
        records=len(examples),
        duplicates_dropped=len(examples) - len(unique),
        scrub=scrub,
        scrubbed=dict(sorted(counts.items())),
        train=len(train),
        validation=len(validation),
    )
    return PreparedData(train, validation, summary)
