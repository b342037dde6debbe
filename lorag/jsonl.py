"""Reading JSON-lines files: one record a line, every bad line reported at once.

`read_jsonl(path, parse)` calls `parse(number, record)` for each non-blank line; a line that
is not JSON, or whose `parse` raises `BadLine(reason)`, becomes a problem `"line N: reason"`
and reading goes on. Callers raise their own package's error with `bad_lines_message`, so
that one run shows every line to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["BadLine", "JsonlRead", "bad_lines_message", "read_jsonl"]

T = TypeVar("T")


class BadLine(ValueError):
    """Raised by a `parse` function: what is wrong with this line's record."""


@dataclass
class JsonlRead(Generic[T]):
    """What a file held: the parsed records, and one `"line N: reason"` per bad line."""

    items: list[T] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_jsonl(path: Path, parse: Callable[[int, Any], T]) -> JsonlRead[T]:
    """Parse every non-blank line of `path` (UTF-8); problems are collected, not raised."""
    result: JsonlRead[T] = JsonlRead()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            result.problems.append(f"line {number}: broken JSON ({exc})")
            continue
        try:
            result.items.append(parse(number, record))
        except BadLine as exc:
            result.problems.append(f"line {number}: {exc}")
    return result


def bad_lines_message(path: Path, problems: list[str]) -> str:
    """`name: N bad line(s):` and the problems, one an indented line."""
    listed = "\n".join(f"  {problem}" for problem in problems)
    return f"{Path(path).name}: {len(problems)} bad line(s):\n{listed}"
