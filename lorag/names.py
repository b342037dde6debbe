"""Names in the registry: adapter, mode and tenant names, versions, and `name@vN` references.

An adapter version is served by vLLM under its reference `name@vN` (`support@v3`), so every
version has a name of its own and a hot swap never reloads new weights under an old name.
Names are plain identifiers, never paths: they cannot hold `/`, start with `.`, or contain `..`.

The tenant-id rule (`TENANT_ID_RULE`) is written here once: the registry (`check_tenant_id`,
`InvalidName`) and the knowledge base (`ingest.models.check_tenant`, `InvalidTenant`) both
test it with `is_tenant_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from lorag.errors import InvalidName

__all__ = [
    "BASE_TARGET",
    "MAX_VERSION",
    "TENANT_ID_PATTERN",
    "TENANT_ID_RULE",
    "AdapterRef",
    "check_adapter_name",
    "check_mode_name",
    "check_tenant_id",
    "check_version",
    "format_ref",
    "is_tenant_id",
    "parse_ref",
]

BASE_TARGET = "base"
"""The mode target that means "the base model, no adapter"; no adapter may take this name."""

_ADAPTER_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
TENANT_ID_RULE = "^[a-z0-9][a-z0-9_-]{0,63}$"
"""A tenant id: 1-64 of a-z 0-9 _ - starting with a letter or digit (as error messages say it)."""
TENANT_ID_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
_VERSION_SUFFIX = re.compile(r"v([1-9][0-9]{0,8})")


def _check_name(kind: str, name: object, param: str) -> str:
    """`name` if it is 1-64 of a-z 0-9 _ . - starting with a letter or digit, without '..'."""
    if not isinstance(name, str) or not _ADAPTER_NAME.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid {kind} name {name!r}: use 1-64 of a-z 0-9 _ . - starting with a letter "
            "or digit, without '..'",
            param=param,
        )
    return name


def check_adapter_name(name: object, *, param: str = "name") -> str:
    """Return `name` if it is a valid adapter name, else raise InvalidName."""
    checked = _check_name("adapter", name, param)
    if checked == BASE_TARGET:
        raise InvalidName(f"{BASE_TARGET!r} is reserved for the base model", param=param)
    return checked


def check_mode_name(name: object, *, param: str = "mode") -> str:
    """Return `name` if it is a valid mode name (same alphabet as adapter names)."""
    return _check_name("mode", name, param)


def is_tenant_id(value: object) -> TypeGuard[str]:
    """Whether `value` is a valid tenant id (`TENANT_ID_RULE`)."""
    return isinstance(value, str) and TENANT_ID_PATTERN.match(value) is not None


def check_tenant_id(tenant_id: object, *, param: str = "tenant") -> str:
    """Return `tenant_id` if it is a valid tenant id, else raise InvalidName."""
    if not is_tenant_id(tenant_id):
        raise InvalidName(
            f"invalid tenant id {tenant_id!r}: use 1-64 of a-z 0-9 _ - starting with a letter "
            "or digit",
            param=param,
        )
    return tenant_id


MAX_VERSION = 2**63 - 1  # the registry stores versions as 64-bit integers


def check_version(version: object, *, param: str = "version") -> int:
    """Return `version` if it is an int in 1..MAX_VERSION (bools refused), else InvalidName."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise InvalidName(
            f"invalid version {version!r}: versions are integers from 1 to {MAX_VERSION}",
            param=param,
        )
    return version


@dataclass(frozen=True)
class AdapterRef:
    """`name@vN`, or `name` alone (version None = the latest, where allowed)."""

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else format_ref(self.name, self.version)


def format_ref(name: str, version: int) -> str:
    """The reference (and vLLM served name) of one adapter version: `name@vN`."""
    return f"{name}@v{version}"


def parse_ref(text: object, *, require_version: bool = False, param: str = "adapter") -> AdapterRef:
    """Parse `name@vN` (or `name` unless `require_version`) into an AdapterRef."""
    if not isinstance(text, str):
        raise InvalidName(f"invalid adapter reference {text!r}", param=param)
    name, sep, suffix = text.partition("@")
    if not sep:
        if require_version:
            raise InvalidName(
                f"adapter reference {text!r} needs a version: write {text}@vN", param=param
            )
        return AdapterRef(check_adapter_name(name, param=param))
    match = _VERSION_SUFFIX.fullmatch(suffix)
    if match is None:
        raise InvalidName(
            f"invalid adapter reference {text!r}: expected name@vN with N >= 1", param=param
        )
    return AdapterRef(check_adapter_name(name, param=param), int(match.group(1)))
