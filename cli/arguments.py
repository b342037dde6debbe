"""argparse pieces shared by the command groups: the sub-parser type and value types."""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeAlias

from lorag.names import is_tenant_id

__all__ = ["Commands", "json_object", "tenant_id"]

# What `add_subparsers()` returns; each group's `register(commands)` adds its parser to it.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def tenant_id(value: str) -> str:
    """argparse type: a valid tenant id."""
    if not is_tenant_id(value):
        raise argparse.ArgumentTypeError(
            f"invalid tenant {value!r}: use lowercase letters, digits, '_' and '-' (max 64)"
        )
    return value


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object ({...})")
    return value
