"""The errors of the `adapters` package (artifacts, store, registry).

    AdapterError                 500  any adapters error
    ├── InvalidInput             400  a value given to the registry is wrong (`param` names it)
    │   ├── InvalidArtifact      400  the adapter folder is not a servable LoRA for this base
    │   │                             (`param`: the file or config field at fault)
    │   └── InvalidName          400  an adapter/tenant/mode name or `name@vN` reference
    ├── NotFound                 404  adapter version, tenant, mode or stored artifact
    ├── Conflict                 409  already exists, or still in use
    └── RegistryError            500  the registry database or store is broken
        ├── RegistryBusy         503  another process holds the registry's write lock
        └── BaseModelUnavailable 500  the base model's folder cannot be read

Every class has `status` (HTTP status) and `code`; instances carry `message` and `param`.
`service.errors.to_envelope` maps them to OpenAI error envelopes by these attributes.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "BaseModelUnavailable",
    "Conflict",
    "InvalidArtifact",
    "InvalidInput",
    "InvalidName",
    "NotFound",
    "RegistryBusy",
    "RegistryError",
]


class AdapterError(Exception):
    status: int = 500
    code: str = "adapter_error"

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(AdapterError, ValueError):
    status = 400
    code = "invalid_input"


class InvalidArtifact(InvalidInput):
    code = "invalid_artifact"


class InvalidName(InvalidInput):
    code = "invalid_name"


class NotFound(AdapterError, LookupError):
    status = 404
    code = "not_found"


class Conflict(AdapterError):
    status = 409
    code = "conflict"


class RegistryError(AdapterError, RuntimeError):
    status = 500
    code = "registry_error"


class RegistryBusy(RegistryError):
    """The registry stayed locked by another writer (a CLI command, another server) for the
    whole busy timeout: retry shortly."""

    status = 503
    code = "registry_busy"


class BaseModelUnavailable(RegistryError):
    code = "base_model_unavailable"
