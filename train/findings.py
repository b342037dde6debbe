"""One thing the data inspection found: how bad, what kind, what it means, and where.

A `Finding` is what `lorag data inspect` prints and `lorag train` acts on: errors stop
training, warnings are shown and training goes on, info is context. `lines` are the 1-based
lines of the user's file the finding concerns (`Example.line`), so every one can be fixed
at its place; `details` holds the numbers behind the message for `--json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["SEVERITIES", "Finding", "Severity", "quote"]

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str  # stable name for scripts: "conflicting_answers", "near_duplicate", ...
    message: str
    lines: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def at(
        cls,
        severity: Severity,
        code: str,
        message: str,
        lines: Iterable[int],
        **details: Any,
    ) -> Finding:
        """A finding whose lines are sorted and unique, whatever order they were found in."""
        return cls(severity, code, message, tuple(sorted(set(lines))), dict(details))

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "lines": list(self.lines),
            "details": self.details,
        }


def quote(text: str, limit: int = 70) -> str:
    """`text` on one line, cut to `limit` characters, in double quotes (for messages)."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return f'"{flat}"'
