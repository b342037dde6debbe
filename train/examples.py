"""The data models of training: chat examples, data summaries and split datasets.

An `Example` is one conversation in OpenAI chat form (`[{"role", "content"}, ...]`) that ends
with an assistant message, plus where it came from (the 1-based line in the user's file, or
the general-prompt mix). Everything downstream (scrubbing, splitting, encoding, the gate)
works on these; the input formats only differ in how they are parsed into them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ROLES",
    "DataFormat",
    "DataSummary",
    "Example",
    "PreparedData",
    "read_examples",
    "write_examples",
]

ROLES = ("system", "user", "assistant")
DataFormat = Literal["chat", "completion", "alpaca", "csv"]


@dataclass(frozen=True)
class Example:
    messages: tuple[dict[str, str], ...]
    line: int = 0  # 1-based line in the source file; 0 = not from the user's file
    source: str = "user"  # "user" | "general" (the base model's own answers) | "raft"
    open_end: bool = False  # the answer was cut at a length limit: no end-of-turn target

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """Everything before the final assistant answer (what a generation starts from)."""
        return list(self.messages[:-1])

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]

    def key(self) -> str:
        """Identity for exact-duplicate detection."""
        return json.dumps(self.messages, sort_keys=True, ensure_ascii=False)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"messages": list(self.messages), "line": self.line}
        data["source"] = self.source
        if self.open_end:
            data["open_end"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Example:
        messages = tuple(
            {"role": str(m["role"]), "content": str(m["content"])} for m in data["messages"]
        )
        return cls(
            messages,
            line=int(data.get("line", 0)),
            source=str(data.get("source", "user")),
            open_end=bool(data.get("open_end", False)),
        )


@dataclass
class DataSummary:
    """What data preparation did: counts reported to the user and kept in the run card."""

    file: str
    sha256: str
    format: str
    records: int = 0
    duplicates_dropped: int = 0
    scrub: bool = True  # False: --no-scrub
    scrubbed: dict[str, int] = field(default_factory=dict)  # placeholders put in, by kind
    train: int = 0
    validation: int = 0
    general_mixed: int = 0
    truncated: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class PreparedData:
    train: list[Example]
    validation: list[Example]
    summary: DataSummary


def write_examples(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")


def read_examples(path: Path) -> list[Example]:
    with path.open(encoding="utf-8") as handle:
        return [Example.from_json(json.loads(line)) for line in handle if line.strip()]
