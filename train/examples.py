"""The data models of training: chat examples, data summaries and split datasets.

An `Example` is one conversation in OpenAI chat form (`[{"role", "content"}, ...]`) that ends
with an assistant message, plus where it came from (the 1-based line in the user's file, or
the general-prompt mix). As in OpenAI's fine-tuning format it may carry `tools` (function
signatures), assistant `tool_calls` (then `content` may be None), `tool` messages with the
calls' results, and a `weight` (0 or 1) on assistant messages: 0 = context, not trained on.
Everything downstream (scrubbing, splitting, encoding, the gate) works on these; the input
formats only differ in how they are parsed into them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ROLES",
    "TOOLS_ROLE",
    "DataFormat",
    "DataSummary",
    "Example",
    "Message",
    "PreparedData",
    "read_examples",
    "write_examples",
]

ROLES = ("system", "user", "assistant", "tool")
TOOLS_ROLE = "tools"
"""The role of the entry that leads a `conversation` whose example has tools: what the chat
template receives as `tools=` (`train.encoding`), kept in the conversation so every prompt
list, and the base-answer cache keyed by prompts, carries them."""
Message = dict[str, Any]
DataFormat = Literal["chat", "completion", "alpaca", "csv"]


@dataclass(frozen=True)
class Example:
    messages: tuple[Message, ...]
    line: int = 0  # 1-based line in the source file; 0 = not from the user's file
    source: str = "user"  # "user" | "general" (the base model's own answers) | "raft"
    open_end: bool = False  # the answer was cut at a length limit: no end-of-turn target
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI function tools offered in the conversation

    @property
    def conversation(self) -> list[Message]:
        """The messages, led by a `tools` entry when the example has tools."""
        lead = [{"role": TOOLS_ROLE, "tools": list(self.tools)}] if self.tools else []
        return [*lead, *self.messages]

    @property
    def prompt_messages(self) -> list[Message]:
        """Everything before the final assistant answer (what a generation starts from)."""
        return self.conversation[:-1]

    @property
    def answer(self) -> str:
        """The final answer's text; tool calls as `name(arguments)` lines after it."""
        final = self.messages[-1]
        calls = [call["function"] for call in final.get("tool_calls") or ()]
        lines = [final.get("content") or "", *(f"{c['name']}({c['arguments']})" for c in calls)]
        return "\n".join(line for line in lines if line)

    def key(self) -> str:
        """Identity for exact-duplicate detection."""
        return json.dumps(self.conversation, sort_keys=True, ensure_ascii=False)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"messages": list(self.messages), "line": self.line}
        data["source"] = self.source
        if self.open_end:
            data["open_end"] = True
        if self.tools:
            data["tools"] = list(self.tools)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Example:
        return cls(
            tuple(dict(message) for message in data["messages"]),
            line=int(data.get("line", 0)),
            source=str(data.get("source", "user")),
            open_end=bool(data.get("open_end", False)),
            tools=tuple(data.get("tools") or ()),
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
    test: int = 0
    general_mixed: int = 0
    truncated: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class PreparedData:
    train: list[Example]  # the trainer learns from it
    validation: list[Example]  # the trainer stops early and picks its checkpoint on it
    summary: DataSummary
    test: list[Example] = field(default_factory=list)  # only the gate reads it


def write_examples(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")


def read_examples(path: Path) -> list[Example]:
    with path.open(encoding="utf-8") as handle:
        return [Example.from_json(json.loads(line)) for line in handle if line.strip()]
