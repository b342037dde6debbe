"""The registry's records: adapter versions, tenants, modes, and what validating an artifact found.

Plain frozen dataclasses with no behaviour beyond derived names and `to_dict` (JSON-ready).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lorag.names import BASE_TARGET, format_ref

__all__ = ["AdapterVersion", "ArtifactInfo", "Mode", "ModeChange", "Tenant"]


def _json_ready(record: object) -> dict[str, Any]:
    out: dict[str, Any] = asdict(record)  # type: ignore[call-overload]
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, tuple):
            out[key] = list(value)
    return out


@dataclass(frozen=True)
class ArtifactInfo:
    """What `validate_artifact` proved about an adapter folder."""

    sha256: str  # digest of the validated bytes (see adapters.artifact_files)
    size_bytes: int
    rank: int  # the largest LoRA rank in the file
    alpha: float
    targets: tuple[str, ...]  # short names of the patched linear modules, sorted
    tensor_count: int
    declared_base: str | None  # the config's base_model_name_or_path, as written


@dataclass(frozen=True)
class AdapterVersion:
    """One immutable, numbered version of a named adapter."""

    name: str
    version: int
    base_model: str  # served name of the base model it was validated against
    rank: int
    alpha: float
    targets: tuple[str, ...]
    sha256: str
    size_bytes: int
    created_at: datetime
    origin: str  # "import", "train:<run id>", ...
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    owner: str | None = None  # tenant id that owns it; None = shared with every tenant
    declared_base: str | None = None
    # The latest gate verdict recorded for it: {"passed", "judged", "at", "by", "failures",
    # "summary"} (a trained version's own gate, or `lorag adapters gate`); None = never gated.
    gate: dict[str, Any] | None = None

    @property
    def gate_status(self) -> str:
        """`passed`, `failed`, `not judged` (too few test examples) or `never gated`."""
        if self.gate is None:
            return "never gated"
        if self.gate.get("passed"):
            return "passed"
        return "failed" if self.gate.get("judged", True) else "not judged"

    @property
    def served_name(self) -> str:
        """The name vLLM serves this version under: `name@vN`."""
        return format_ref(self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        return {**_json_ready(self), "served_name": self.served_name}


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return _json_ready(self)


@dataclass(frozen=True)
class Mode:
    """A tenant's named choice of adapter version (or the base model) and retrieval settings."""

    tenant: str
    name: str
    adapter: str | None  # None (with version None) = the base model
    version: int | None
    retrieval: dict[str, Any] = field(default_factory=dict)  # free-form JSON
    position: int = 0
    is_default: bool = False
    system_prompt: str | None = None  # the operator's instructions, sent before the request's

    @property
    def is_base(self) -> bool:
        return self.adapter is None

    @property
    def target(self) -> str:
        """`base`, or the served name `name@vN` of the adapter version."""
        if self.adapter is None or self.version is None:
            return BASE_TARGET
        return format_ref(self.adapter, self.version)

    @property
    def qualified_name(self) -> str:
        """`tenant:mode`, as conflicts name it."""
        return f"{self.tenant}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {**_json_ready(self), "target": self.target}


@dataclass(frozen=True)
class ModeChange:
    """One recorded change of a mode: who, when, from which target to which, and the gate
    verdict of the version it then pointed at."""

    id: int
    tenant: str
    mode: str
    at: datetime
    actor: str
    action: str  # create, repoint, settings, remove, rollback
    from_target: str | None  # None: the mode did not exist
    to_target: str | None  # None: the mode was removed
    gate: str | None  # the target's gate status (AdapterVersion.gate_status); None for base
    forced: bool = False  # promoted with --force although its gate did not pass
    changed: tuple[str, ...] = ()  # what else changed: retrieval, system_prompt, default

    def to_dict(self) -> dict[str, Any]:
        return _json_ready(self)
