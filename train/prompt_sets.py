"""Prompt lists shipped with lorag (and the user's own): the control set and the general mix.

One JSON object per line: `{"prompt": "...", "expect": "Paris"}`; `expect` is optional and may
be a list of alternatives (any one counts). The control set (`control_prompts.jsonl`) is only
ever used by the gate; the general prompts (`general_prompts.jsonl`) only for training: the two
lists share no prompt, so the gate measures forgetting on prompts the mix never showed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from train.errors import InvalidData

__all__ = ["CONTROL_PROMPTS", "GENERAL_PROMPTS", "PromptItem", "load_prompts"]

_DATA = Path(__file__).resolve().parent / "data"
CONTROL_PROMPTS = _DATA / "control_prompts.jsonl"
GENERAL_PROMPTS = _DATA / "general_prompts.jsonl"


@dataclass(frozen=True)
class PromptItem:
    prompt: str
    expect: tuple[str, ...] = ()  # keywords; an answer "contains" the item if it has any one

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.prompt}]

    def found_in(self, answer: str) -> bool:
        lowered = answer.lower()
        return any(keyword.lower() in lowered for keyword in self.expect)


def _prompt_item(number: int, record: Any) -> PromptItem:
    prompt = record.get("prompt") if isinstance(record, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadLine("missing or empty 'prompt'")
    expect = record.get("expect") or ()
    if isinstance(expect, str):
        expect = (expect,)
    if not isinstance(expect, (list, tuple)) or not all(isinstance(e, str) for e in expect):
        raise BadLine("'expect' must be a string or a list of strings")
    return PromptItem(prompt, tuple(expect))


def load_prompts(path: Path) -> list[PromptItem]:
    """Read a prompt list; every bad line is reported at once (`InvalidData`)."""
    if not path.is_file():
        raise InvalidData(f"prompt file not found: {path}", param=str(path))
    read = read_jsonl(path, _prompt_item)
    if read.problems:
        raise InvalidData(
            bad_lines_message(path, read.problems), param=str(path), problems=read.problems
        )
    if not read.items:
        raise InvalidData(f"{path.name}: no prompts", param=str(path))
    return read.items
