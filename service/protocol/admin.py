"""Bodies of the operator API (`/admin/...`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CreateTenant", "ImportAdapter", "SetMode"]


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


class SetMode(_Strict):
    target: str = Field(description='"base", "adapter@vN", or "adapter" (its latest version).')
    retrieval: dict[str, Any] | None = None
    default: bool | None = None
    preload: bool = Field(True, description="Load the adapter into the engine before switching.")
