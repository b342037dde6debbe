"""Prompt lists shipped with lorag (and the user's own): the control set and the general mix.

One JSON object per line: `{"prompt": "...", "expect": "Paris"}`; `expect` is optional and may
be a list of alternatives (any one counts). The control set (`control_prompts.jsonl`) is only
ever used by the gate; the general prompts (`general_prompts.jsonl`) only for training: the two
lists share no prompt, so the gate measures forgetting on prompts the mix never showed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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


def load_prompts(path: Path) -> list[PromptItem]:
    """Read a prompt list; every bad line is reported at once (`InvalidData`)."""
    if not path.is_file():
        raise InvalidData(f"prompt file not found: {path}", param=str(path))
    items: list[PromptItem] = []
    problems: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {number}: broken JSON ({exc})")
            continue
        prompt = record.get("prompt") if isinstance(record, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            problems.append(f"line {number}: missing or empty 'prompt'")
            continue
        expect = record.get("expect") or ()
        if isinstance(expect, str):
            expect = (expect,)
        if not isinstance(expect, (list, tuple)) or not all(isinstance(e, str) for e in expect):
            problems.append(f"line {number}: 'expect' must be a string or a list of strings")
            continue
        items.append(PromptItem(prompt, tuple(expect)))
    if problems:
        raise InvalidData(
            f"{path.name}: {len(problems)} bad line(s):\n" + "\n".join(f"  {p}" for p in problems),
            param=str(path),
            problems=problems,
        )
    if not items:
        raise InvalidData(f"{path.name}: no prompts", param=str(path))
    return items
