"""The service's errors, and how every package's errors become OpenAI error envelopes.

    LoragError                      any lorag service error
    ├── ClientError (4xx)
    │   ├── InvalidRequest  400     a field of the request is wrong (`param` names it)
    │   ├── Unauthorized    401     missing or unknown API key
    │   ├── Forbidden       403     the key may not do this
    │   ├── NotFound        404     model, mode, adapter, document, job...
    │   ├── Conflict        409
    │   └── RequestTooLarge 413     the request body is over its limit
    └── ServerError (5xx)
        ├── ConfigurationError 500  settings or installation are wrong
        ├── EngineUnavailable  503  vLLM is down or restarting
        ├── StoreUnavailable   503  the knowledge base does not answer
        └── UpstreamTimeout    504  vLLM took longer than the request timeout

Other packages (`adapters`, `ingest`, `train`) keep their own hierarchies; `to_envelope`
maps them by their `status` attribute (default 500) at the HTTP boundary.
"""

from __future__ import annotations

from typing import Any

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
    "package_error_bases",
    "to_envelope",
]


class LoragError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class ClientError(LoragError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError, ValueError):
    code = "invalid_request"


class Unauthorized(ClientError, PermissionError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ClientError, PermissionError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(ClientError, LookupError):
    status = 404
    code = "not_found"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class RequestTooLarge(ClientError):
    status = 413
    code = "request_too_large"


class ServerError(LoragError):
    status = 500
    type = "server_error"


class ConfigurationError(ServerError, RuntimeError):
    code = "configuration_error"


class EngineUnavailable(ServerError, ConnectionError):
    status = 503
    type = "service_unavailable"
    code = "engine_unavailable"


class StoreUnavailable(ServerError, ConnectionError):
    status = 503
    type = "service_unavailable"
    code = "store_unavailable"


class UpstreamTimeout(ServerError, TimeoutError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    503: "service_unavailable",
    504: "timeout",
}


def envelope(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_envelope(exc: Exception) -> tuple[int, dict[str, Any]]:
    """Status and OpenAI error body for any exception from any lorag package."""
    if isinstance(exc, LoragError):
        return exc.status, envelope(exc.message, type=exc.type, param=exc.param, code=exc.code)
    status = int(getattr(exc, "status", 500))
    message = str(getattr(exc, "message", None) or exc) if status < 500 else _server_message(exc)
    fallback = "server_error" if status >= 500 else "invalid_request_error"
    return status, envelope(
        message,
        type=_TYPE_BY_STATUS.get(status, fallback),
        param=getattr(exc, "param", None),
        code=getattr(exc, "code", None),
    )


def _server_message(exc: Exception) -> str:
    message = str(getattr(exc, "message", None) or exc)
    return message or type(exc).__name__


def package_error_bases() -> tuple[type[Exception], ...]:
    """The base exception of every lorag package, plus the service's own."""
    import importlib

    bases: list[type[Exception]] = [LoragError]
    for module, name in (
        ("adapters.errors", "AdapterError"),
        ("ingest.errors", "IngestError"),
        ("train.errors", "TrainError"),
    ):
        try:
            bases.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(bases)
