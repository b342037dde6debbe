"""The service's errors, and how any exception becomes an OpenAI error envelope.

    lorag.errors.LoragError
    ├── ClientError: InvalidRequest 400, Unauthorized 401, Forbidden 403, NotFound 404,
    │                Conflict 409, RequestTooLarge 413      (the core's, re-exported here)
    └── ServerError (5xx)
        ├── ConfigurationError 500  settings or installation are wrong   (the core's)
        ├── EngineUnavailable  503  vLLM is down or restarting
        ├── StoreUnavailable   503  the knowledge base does not answer
        └── UpstreamTimeout    504  vLLM took longer than the request timeout

Every package's errors extend `lorag.errors.LoragError`; `to_envelope` is the gateway's one
mapping: a `LoragError` keeps its status and fields, anything else is a 500.
"""

from __future__ import annotations

from typing import Any

from lorag.errors import (
    ClientError,
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidRequest,
    LoragError,
    NotFound,
    RequestTooLarge,
    ServerError,
    Timeout,
    Unauthorized,
    Unavailable,
    envelope,
    type_for_status,
)

__all__ = [
    "ClientError",
    "ConfigurationError",
    "Conflict",
    "EngineUnavailable",
    "Forbidden",
    "InvalidRequest",
    "LoragError",
    "NotFound",
    "RequestTooLarge",
    "ServerError",
    "StoreUnavailable",
    "Unauthorized",
    "UpstreamTimeout",
    "envelope",
    "to_envelope",
]


class EngineUnavailable(Unavailable, ConnectionError):
    code = "engine_unavailable"


class StoreUnavailable(Unavailable, ConnectionError):
    code = "store_unavailable"


class UpstreamTimeout(Timeout, TimeoutError):
    code = "upstream_timeout"


def to_envelope(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and OpenAI error body for any exception: a `LoragError` as it says; anything
    else by its `status` attribute if it has one (default 500)."""
    if isinstance(exc, LoragError):
        return exc.status, exc.to_envelope()
    status = int(getattr(exc, "status", 500))
    message = str(getattr(exc, "message", None) or exc)
    if status >= 500 and not message:
        message = type(exc).__name__
    return status, envelope(
        message,
        type=type_for_status(status),
        param=getattr(exc, "param", None),
        code=getattr(exc, "code", None),
    )
