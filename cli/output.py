"""What the commands print: tables, labelled fields, JSON, sizes and error lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

__all__ = [
    "client_error_message",
    "print_error",
    "print_fields",
    "print_json",
    "print_table",
    "size",
]


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """One `label:  value` line per field, the values aligned."""
    for label, value in fields:
        print(f"{label + ':':<15}{value}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> None:
    """Columns padded to their widest cell; `empty` alone when there are no rows."""
    if not rows:
        print(empty)
        return
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json(value: object) -> None:
    """Indented JSON with sorted keys."""
    print(json.dumps(value, indent=2, sort_keys=True))


def size(size_bytes: int) -> str:
    """`512 B`, `1.5 KiB`, `3.2 MiB`, `1.0 GiB`."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    amount = float(size_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"


def client_error_message(exc: BaseException) -> str | None:
    """The one-line message of a client error (a `LoragError` with a status below 500, or
    anything else carrying such a `status`); None for every other exception."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status < 500:
        return str(getattr(exc, "message", None) or exc)
    return None


def print_error(message: str) -> None:
    """`error: <message>` on standard error."""
    print(f"error: {message}", file=sys.stderr)
