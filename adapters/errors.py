"""The errors of the `adapters` package (artifacts, store, registry), on `lorag.errors`.

    lorag.errors.LoragError
    └── AdapterError                 500  any adapters error
        ├── InvalidInput             400  a value given to the registry is wrong (`param`)
        │   └── InvalidArtifact      400  the adapter folder is not a servable LoRA for this
        │                                 base (`param`: the file or config field at fault)
        ├── NotFound                 404  adapter version, tenant, mode or stored artifact
        ├── Conflict                 409  already exists, or still in use
        └── RegistryError            500  the registry database or store is broken
            ├── RegistryBusy         503  another process holds the registry's write lock
            └── RegistryUnavailable  503  the registry's database server does not answer

Re-exported from the core (raised by `lorag.names` and `lorag.base_model`, which the layers
below use too): `InvalidName` (400, a `lorag.errors.InvalidRequest`: an adapter, tenant or
mode name or a `name@vN` reference) and `BaseModelUnavailable` (500: the base model's folder
cannot be read).

Each class is also the core's matching class (`InvalidInput` is a `lorag.errors.InvalidRequest`,
`RegistryBusy` a `lorag.errors.Unavailable`, ...).
"""

from __future__ import annotations

from lorag import errors as core
from lorag.errors import BaseModelUnavailable, InvalidName

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
    "RegistryUnavailable",
]


class AdapterError(core.LoragError):
    status = 500
    code = "adapter_error"


class InvalidInput(core.InvalidRequest, AdapterError):
    status = 400
    code = "invalid_input"


class InvalidArtifact(InvalidInput):
    code = "invalid_artifact"


class NotFound(core.NotFound, AdapterError):
    status = 404
    code = "not_found"


class Conflict(core.Conflict, AdapterError):
    status = 409
    code = "conflict"


class RegistryError(core.ServerError, AdapterError, RuntimeError):
    status = 500
    code = "registry_error"


class RegistryBusy(core.Unavailable, RegistryError):
    """The registry stayed locked by another writer (a CLI command, another server) for the
    whole busy timeout: retry shortly."""

    status = 503
    code = "registry_busy"


class RegistryUnavailable(core.Unavailable, RegistryError):
    """The registry's database server (PostgreSQL) cannot be reached, is restarting or has no
    connection to spare: retry shortly. The message names no server: it may reach callers."""

    status = 503
    code = "registry_unavailable"
