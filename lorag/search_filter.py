"""A search filter's rules: which payload keys a request or a mode may filter on, and how.

A filter is an object of exact matches (`{"source": "faq.md", "lang": ["en", "de"]}`); a key
the store keeps at the top of a chunk's payload (`FILTER_FIELDS`) is matched there, any
other key as `metadata.<key>`. The tenant is never a filter key: the store scopes every
search to the caller's tenant itself. Pure rules, no store: the knowledge base builds its
queries from `filter_conditions`, and a mode's filter is checked with it when it is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lorag.errors import InvalidFilter

__all__ = [
    "FILTER_FIELDS",
    "METADATA_FIELD",
    "TENANT_FIELD",
    "Condition",
    "Scalar",
    "filter_conditions",
]

TENANT_FIELD = "tenant"
METADATA_FIELD = "metadata"
FILTER_FIELDS = frozenset(
    {"doc_id", "chunk_index", "content_hash", "scope", "source", "title", "section", "page"}
)
"""Payload fields a search filter may name directly; any other key means `metadata.<key>`."""
_FILTER_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_MAX_LIST_VALUES = 1000

Scalar = str | int | bool
Condition = tuple[str, Scalar | list[Scalar]]
"""(payload key, value): exact match; a list matches any of its values."""


def filter_conditions(filter: Mapping[str, Any] | None) -> list[Condition]:
    """A user's exact-match filter as conditions; raises `InvalidFilter` for bad keys/values."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise InvalidFilter("filter must be an object of payload key -> value", param="filter")
    conditions: list[Condition] = []
    for key, value in filter.items():
        if not isinstance(key, str) or not _FILTER_KEY.match(key):
            raise InvalidFilter(f"invalid filter key {key!r}", param="filter")
        if key == TENANT_FIELD or key.startswith(f"{TENANT_FIELD}."):
            raise InvalidFilter("the tenant cannot be filtered on", param="filter")
        direct = key in FILTER_FIELDS or key.startswith(f"{METADATA_FIELD}.")
        path = key if direct else f"{METADATA_FIELD}.{key}"
        conditions.append((path, _filter_value(key, value)))
    return conditions


def _filter_value(key: str, value: Any) -> Scalar | list[Scalar]:
    if isinstance(value, list):
        if not value or len(value) > _MAX_LIST_VALUES:
            raise InvalidFilter(f"filter {key!r}: a list needs 1 to 1000 values", param="filter")
        kinds = {bool if isinstance(v, bool) else type(v) for v in value}
        if kinds not in ({str}, {int}):
            raise InvalidFilter(
                f"filter {key!r}: a list must hold only strings or only integers", param="filter"
            )
        return list(value)
    if isinstance(value, str | int | bool):
        return value
    raise InvalidFilter(
        f"filter {key!r}: value must be a string, integer or boolean", param="filter"
    )
