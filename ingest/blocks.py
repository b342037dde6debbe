"""Text and markdown split into `Block`s: headings and blank-line-separated paragraphs.

Markdown headings are ATX (`## Title`) and setext (a line underlined with `===`/`---`);
fenced code blocks stay whole and are never read as headings. Plain text has no headings.
"""

from __future__ import annotations

import re

from ingest.models import Block

__all__ = [
    "MAX_HEADING_CHARS",
    "heading_block",
    "markdown_blocks",
    "normalize_newlines",
    "text_blocks",
]

_ATX = re.compile(r" {0,3}(#{1,6})[ \t]+")
"""An ATX heading's opening (`## `); its text is the rest of the line less a closing `#` run.
Only the bounded opening is a pattern: `(.*?)[ \t#]*$` backtracked quadratically on one long
line (seconds at 16k characters)."""
MAX_HEADING_CHARS = 500
"""Longer "headings" are read as paragraphs: a heading is copied into the section path and
payload of every chunk under it, and the first one may become the title."""
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def heading_block(text: str, level: int, page: int | None = None) -> Block:
    """A heading block, or a paragraph block when `text` is over MAX_HEADING_CHARS."""
    return Block(text, level if len(text) <= MAX_HEADING_CHARS else 0, page)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_blocks(text: str, *, page: int | None = None) -> list[Block]:
    """Plain text: one paragraph block per run of non-blank lines."""
    blocks: list[Block] = []
    for part in re.split(r"\n[ \t]*\n", normalize_newlines(text)):
        part = part.strip()
        if part:
            blocks.append(Block(part, 0, page))
    return blocks


def markdown_blocks(text: str) -> list[Block]:
    """Markdown: heading blocks (levels 1-6) and paragraph blocks, in document order."""
    blocks: list[Block] = []
    lines: list[str] = []
    fence: str | None = None

    def flush() -> None:
        para = "\n".join(lines).strip()
        lines.clear()
        if para:
            blocks.append(Block(para))

    for line in normalize_newlines(text).split("\n"):
        if fence is not None:
            lines.append(line)
            if line.strip().startswith(fence):
                fence = None
                flush()
            continue
        opening = _FENCE.match(line)
        if opening:
            flush()
            fence = opening.group(1)
            lines.append(line)
            continue
        heading = _ATX.match(line)
        if heading:
            flush()
            title = line[heading.end() :].rstrip(" \t#").strip()
            if title:
                blocks.append(heading_block(title, len(heading.group(1))))
            continue
        underline = _SETEXT.match(line)
        if underline and len(lines) == 1 and lines[0].strip():
            title = lines.pop().strip()
            blocks.append(heading_block(title, 1 if underline.group(1)[0] == "=" else 2))
            continue
        if underline and not lines:
            continue  # a horizontal rule
        if not line.strip():
            flush()
            continue
        lines.append(line.rstrip())
    flush()
    return blocks
