"""Bodies of the operator API (`/admin/...`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Actor", "CreateTenant", "ImportAdapter", "SetMode"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImportAdapter(_Strict):
    path: str = Field(description="Folder on the gateway's machine holding the peft artifact.")
    name: str
    owner: str | None = Field(None, description="Tenant that owns it; unset = shared.")
    notes: str = ""


class CreateTenant(_Strict):
    id: str
    display_name: str = ""


class Actor(_Strict):
    actor: str | None = Field(
        None, max_length=200, description="Who makes the change, for the mode's history."
    )


class SetMode(Actor):
    target: str = Field(description='"base", "adapter@vN", or "adapter" (its latest version).')
    retrieval: dict[str, Any] | None = None
    default: bool | None = None
    system_prompt: str | None = Field(
        None,
        max_length=20000,
        description="The mode's instructions, sent as a system message before the request's "
        'own; unset keeps them, "" removes them.',
    )
    force: bool = Field(
        False,
        description="Point at a version that never passed a gate (recorded as forced).",
    )
    preload: bool = Field(True, description="Load the adapter into the engine before switching.")
