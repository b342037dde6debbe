"""From a user's training file to a clean, split dataset.

`prepare_data` = parse and validate every record (`data_formats`), replace personal data with
placeholders (`scrub`, on by default), drop exact duplicates, then a seeded shuffle splits
train / validation / test (default 80/10/10). The `DataSummary` it returns carries every count,
and the file's sha256, for the run card.

The three splits have different readers: the trainer learns from train, and picks its
checkpoint and stops early on validation; only the gate reads test. A test split that chose
the checkpoint would flatter the adapter it judges. Examples that share a prompt go to the
same split (same question, two answers, one in train and one in test would be a leak), and
test is cut first: changing `val_fraction` never changes which examples are tested.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from train.data_formats import load_examples
from train.errors import InvalidOption
from train.examples import DataSummary, Example, PreparedData
from train.scrub import scrub_example

__all__ = ["Split", "file_sha256", "prepare_data", "split_examples"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Split:
    """The examples each reader gets (see the module docstring)."""

    train: list[Example]
    validation: list[Example]
    test: list[Example]


def _share(groups: int, fraction: float, free: int) -> int:
    """How many of `groups` a split of `fraction` takes: rounded, at least one when the
    fraction is not 0, never more than the `free` groups it may still take."""
    wanted = round(groups * fraction)
    if fraction > 0 and wanted == 0:
        wanted = 1
    return max(0, min(wanted, free))


def split_examples(
    examples: list[Example], val_fraction: float, seed: int, test_fraction: float = 0.0
) -> Split:
    """Seeded shuffle of the prompts; the first `test_fraction` of them is test, the next
    `val_fraction` validation, the rest train (which always keeps at least one)."""
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise InvalidOption(f"{name} must be in [0, 1), got {fraction}", param=name)
    if val_fraction + test_fraction >= 1.0:
        raise InvalidOption(
            f"val_fraction + test_fraction must leave examples to train on, got "
            f"{val_fraction} + {test_fraction}",
            param="test_fraction",
        )
    by_prompt: dict[str, list[Example]] = {}
    for example in examples:
        prompt = example.prompt_messages or example.conversation  # (a lone message: itself)
        key = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
        by_prompt.setdefault(key, []).append(example)
    groups = list(by_prompt.values())
    random.Random(seed).shuffle(groups)
    n_test = _share(len(groups), test_fraction, len(groups) - 1)
    n_val = _share(len(groups), val_fraction, len(groups) - 1 - n_test)

    def flat(part: list[list[Example]]) -> list[Example]:
        return [example for group in part for example in group]

    return Split(
        train=flat(groups[n_test + n_val :]),
        validation=flat(groups[n_test : n_test + n_val]),
        test=flat(groups[:n_test]),
    )


def prepare_data(
    path: Path,
    *,
    data_format: str = "auto",
    prompt_column: str | None = None,
    completion_column: str | None = None,
    scrub: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
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
    split = split_examples(list(unique.values()), val_fraction, seed, test_fraction)
    summary = DataSummary(
        file=path.name,
        sha256=file_sha256(path),
        format=fmt,
        records=len(examples),
        duplicates_dropped=len(examples) - len(unique),
        scrub=scrub,
        scrubbed=dict(sorted(counts.items())),
        train=len(split.train),
        validation=len(split.validation),
        test=len(split.test),
    )
    return PreparedData(split.train, split.validation, summary, split.test)
