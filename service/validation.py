"""Request bodies to protocol types, with errors that name the field (400)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.errors import InvalidRequest

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return data


def validate(model_type: type[ModelT], data: dict[str, Any]) -> ModelT:
    try:
        return model_type.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        raise InvalidRequest(message, param=param) from None


def parse_body(model_type: type[ModelT], raw: bytes) -> ModelT:
    return validate(model_type, parse_json(raw))
