"""lorag's one error tree: every package's errors extend these, and the gateway's one handler
writes any of them as OpenAI's error envelope `{"error": {message, type, param, code}}`.

    LoragError                       any lorag error: message, param, code, HTTP status, type
    ├── ClientError (4xx)            the caller can fix it
    │   ├── InvalidRequest   400     a value is wrong (`param` names it)       ValueError
    │   │   ├── InvalidName  400     an adapter/tenant/mode name or `name@vN` (lorag.names)
    │   │   └── InvalidFilter 400    a search filter key or value (lorag.search_filter)
    │   ├── Unauthorized     401     missing or unknown API key                PermissionError
    │   ├── Forbidden        403     the key may not do this                   PermissionError
    │   ├── NotFound         404     model, mode, adapter, document, job...    LookupError
    │   ├── Conflict         409     already exists, still in use, locked
    │   ├── RequestTooLarge  413     the request body is over its limit
    │   └── TooManyRequests  429     a quota is full: retry later
    └── ServerError (5xx)            lorag or what it runs on is at fault
        ├── ConfigurationError   500 settings or installation are wrong            RuntimeError
        ├── BaseModelUnavailable 500 the base model's folder cannot be read (lorag.base_model)
        ├── Unavailable      503     a backend (vLLM, the store, the registry) does not answer
        └── Timeout          504     a backend took too long

Each package's errors module (`service.errors`, `adapters.errors`, `ingest.errors`,
`train.errors`) extends the matching class here and sets its own `code`. `type` (OpenAI's
error type) follows from `status` unless a class sets it; `envelope` is the wire format.
The builtin bases on the right are the core's; a package adds others where its callers catch
them (`ConnectionError`, `TimeoutError`, `RuntimeError`), never an `OSError` by accident.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BaseModelUnavailable",
    "ClientError",
    "ConfigurationError",
    "Conflict",
    "Forbidden",
    "InvalidFilter",
    "InvalidName",
    "InvalidRequest",
    "LoragError",
    "NotFound",
    "RequestTooLarge",
    "ServerError",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "envelope",
    "type_for_status",
]

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


def type_for_status(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    fallback = "server_error" if status >= 500 else "invalid_request_error"
    return _TYPE_BY_STATUS.get(status, fallback)


def envelope(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class LoragError(Exception):
    """Base of every lorag error. A class without its own `type` gets the one its `status`
    implies (`type_for_status`)."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = type_for_status(cls.status)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_envelope(self) -> dict[str, Any]:
        return envelope(self.message, type=self.type, param=self.param, code=self.code)


class ClientError(LoragError):
    status = 400


class InvalidRequest(ClientError, ValueError):
    code = "invalid_request"


class InvalidName(InvalidRequest):
    code = "invalid_name"


class InvalidFilter(InvalidRequest):
    code = "invalid_filter"


class Unauthorized(ClientError, PermissionError):
    status = 401
    code = "invalid_api_key"


class Forbidden(ClientError, PermissionError):
    status = 403
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


class TooManyRequests(ClientError):
    status = 429
    code = "rate_limit_exceeded"


class ServerError(LoragError):
    status = 500


class ConfigurationError(ServerError, RuntimeError):
    code = "configuration_error"


class BaseModelUnavailable(ServerError, RuntimeError):
    code = "base_model_unavailable"


class Unavailable(ServerError):
    status = 503
    code = "unavailable"


class Timeout(ServerError):
    status = 504
    code = "timeout"
