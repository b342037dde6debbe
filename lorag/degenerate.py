"""Answers that say nothing: only citation markers, or the source list repeated.

A small model given numbered sources sometimes answers "[1] [2] [3]" or copies the
`[n] Title > Section` lines back. `degenerate` names which (or returns None); the gateway
then flags the answer in `lorag.retrieval` or asks once more with the template's strict
instructions, as the mode says (`on_degenerate`). Pure code, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["degenerate"]

_MARKER = re.compile(r"\[\s*\d{1,3}\s*\]")
_LISTED = re.compile(r"^\s*(?:[-*]\s*)?\[\s*\d{1,3}\s*\]\s*(.*)$")


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def degenerate(answer: str, labels: Sequence[str] = ()) -> str | None:
    """Why `answer` is degenerate ("only citation markers", "repeats the source list"), or
    None. `labels`: the sources' labels as the prompt gave them (`Title > Section`)."""
    markers = _MARKER.findall(answer)
    if markers and not _plain(_MARKER.sub(" ", answer)):
        return "only citation markers"
    if answer.lstrip().lower().startswith("sources:"):
        return "repeats the source list"
    plain_labels = [_plain(label) for label in labels if _plain(label)]
    listed = [m.group(1) for line in answer.splitlines() if (m := _LISTED.match(line))]
    echoed = [
        line for line in listed if any(_plain(line).startswith(label) for label in plain_labels)
    ]
    if len(echoed) >= 2:
        return "repeats the source list"
    return None
