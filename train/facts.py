"""Specific facts in a text: numbers, prices, dates, versions, product codes, abbreviations,
CamelCase product names and (optionally) names in mid-sentence.

A crude but cheap reading, used twice: answers full of facts the prompt did not give are
knowledge, not behaviour (`train.task_profile`), and two nearly identical examples about
different products or amounts are a template filled in twice, not a copy
(`train.duplicates`). The duplicate check leaves out capitalised words in mid-sentence: a
"Hi, Hi there" greeting would otherwise make a copy look like another product.
"""

from __future__ import annotations

import re

__all__ = ["facts"]

_HARD = (
    r"[$€£]?\d+(?:[.,:/-]\d+)*%?"  # numbers, prices, dates, times, versions
    r"|\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{2,}\b"  # codes mixing letters and digits
    r"|\b[A-Z]{2,}(?:-[A-Z0-9]+)*\b"  # abbreviations
    r"|\b[A-Z][a-z]+[A-Z]\w*"  # CamelCase names: RoboVac, LumaBulb
)
_NAMES = r"|(?<=[a-z0-9,;] )[A-Z][a-z]+(?: [A-Z][a-z]+)*"  # names in mid-sentence
_FACT = re.compile(_HARD + _NAMES)
_HARD_FACT = re.compile(_HARD)


def facts(text: str, *, names: bool = True) -> frozenset[str]:
    """The facts of `text`, case-folded; `names=False` leaves out capitalised words."""
    pattern = _FACT if names else _HARD_FACT
    return frozenset(match.group(0).casefold() for match in pattern.finditer(text))
