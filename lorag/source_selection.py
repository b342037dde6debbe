"""Which retrieved chunks go into the prompt, and what the question is about.

A knowledge base of look-alike documents (product sheets, policies per country, contracts
per customer) returns, beside the right chunk, the same section of other documents: the
bundled model then copies their values. `select` keeps fewer, better sources:

1. near-duplicate collapse: a chunk that differs from a better-ranked one only in its values
   (numbers, the names in its document's title) is dropped, unless the question asks for a
   comparison (`asks_comparison`), where those chunks are the point;
2. relative cut-off: chunks scoring below `cutoff` times the best score are dropped (search
   scores are fractions of the best in every search kind, `ingest.store.fusion`);
3. at least `min_k` chunks (refilled in rank order from those the cut-off dropped), at most
   `max_k`.

`named_entity` finds the document title the question names, for the prompt to state it.
Pure code (no I/O), shared by the gateway and `lorag eval answers --sweep`'s report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Protocol

__all__ = [
    "NEAR_DUPLICATE_RATIO",
    "Selection",
    "asks_comparison",
    "named_entities",
    "near_duplicate",
    "select",
]

NEAR_DUPLICATE_RATIO = 0.6
"""Word-sequence similarity (difflib's ratio) at which two chunks whose numbers and title
words are masked count as one template filled with other values. On examples/lookalike the
same section of two sheets scores 0.67-1.0 (0.67: names and cities differ, they are not
masked), two different sections at most 0.34; the one-sentence sheets of examples/knowledge,
which share a sentence pattern but not their fields, 0.24-0.45."""

_WORD = re.compile(r"[^\W_]+(?:[-./][^\W_]+)*")
_COMPARISON = re.compile(
    r"\b(compar\w*|versus|vs|differ\w*|both|between|which (?:one|of)|rank\w*|"
    r"(?:more|less|higher|lower|larger|smaller|cheaper|dearer|heavier|lighter|longer|"
    r"shorter|faster|slower|better|worse)\s+than|(?:highest|lowest|largest|smallest|"
    r"cheapest|heaviest|lightest|longest|shortest|fastest|slowest))\b",
    re.IGNORECASE,
)


class Source(Protocol):
    """What selection reads of a search hit (`ingest.models.Hit` has it)."""

    @property
    def doc_id(self) -> str: ...
    @property
    def title(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...


@dataclass
class Selection:
    kept: list[Source]  # best first
    below_cutoff: int = 0
    collapsed: int = 0
    comparison: bool = False
    entities: list[str] = field(default_factory=list)  # document titles the question names


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _shape(hit: Source) -> list[str]:
    """The chunk's words with its values masked: any word with a digit, and its title's."""
    title = set(_words(hit.title or ""))
    return [
        "#" if any(c.isdigit() for c in word) else "@" if word in title else word
        for word in _words(hit.text)
    ]


def _alike(shape_a: list[str], shape_b: list[str]) -> bool:
    if not shape_a or not shape_b:
        return False
    matcher = SequenceMatcher(None, shape_a, shape_b, autojunk=False)
    # the cheap upper bounds first: most pairs of chunks are not alike at all
    return (
        matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO
        and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
        and matcher.ratio() >= NEAR_DUPLICATE_RATIO
    )


def near_duplicate(a: Source, b: Source) -> bool:
    """Whether `a` and `b` are one template with other values (or the same text)."""
    return _alike(_shape(a), _shape(b))


def _phrase(text: str) -> str:
    return f" {' '.join(_words(text))} "


def named_entities(question: str, hits: Sequence[Source]) -> list[str]:
    """The titles of the hits' documents that the question names (whole words, any case),
    longest first; a title inside a longer named one is not counted twice."""
    asked = _phrase(question)
    titles = sorted({h.title for h in hits if h.title and _words(h.title)}, key=len, reverse=True)
    named: list[str] = []
    for title in titles:
        phrase = _phrase(title)
        if phrase in asked and not any(phrase in _phrase(longer) for longer in named):
            named.append(title)
    return named


def asks_comparison(question: str, entities: Sequence[str] = ()) -> bool:
    """A question that names two documents, or uses a comparing word ("compare", "which
    of", "cheaper than", "highest", ...)."""
    return len(entities) > 1 or _COMPARISON.search(question) is not None


def select(
    hits: Sequence[Source],
    question: str,
    *,
    max_k: int,
    min_k: int = 1,
    cutoff: float | None = None,
    collapse: bool = True,
) -> Selection:
    """The hits (best first) to put in the prompt; see the module's docstring."""
    entities = named_entities(question, hits)
    comparison = asks_comparison(question, entities)
    candidates = list(hits)
    collapsed = 0
    if collapse and not comparison:
        distinct: list[tuple[Source, list[str]]] = []
        for hit in candidates:
            if len(distinct) == max_k:  # the rest could not be kept anyway
                break
            shape = _shape(hit)
            if any(_alike(shape, better) for _, better in distinct):
                collapsed += 1
            else:
                distinct.append((hit, shape))
        candidates = [hit for hit, _ in distinct]
    kept, below = candidates, []
    if cutoff is not None and candidates:
        floor = cutoff * max(h.score for h in candidates)
        kept = [h for h in candidates if h.score >= floor]
        below = [h for h in candidates if h.score < floor]
    refill = below[: max(0, min_k - len(kept))]
    kept = sorted([*kept, *refill], key=candidates.index)[:max_k]
    return Selection(
        kept=kept,
        below_cutoff=len(below) - len(refill),
        collapsed=collapsed,
        comparison=comparison,
        entities=entities,
    )
