"""How deeply a parsed JSON value nests arrays and objects, measured without recursion.

Request bodies and ingested JSONL records are checked against a depth limit before anything
walks them recursively (Python's recursion limit turns a deep value into a crash).
"""

from __future__ import annotations

from typing import Any

__all__ = ["nesting_depth"]


def nesting_depth(value: Any) -> int:
    """How deeply `value` nests lists and dicts (a scalar is 0); iterative, so any depth."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in item)
    return deepest
