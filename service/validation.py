"""Request bodies to protocol types, with errors that name the field (400)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lorag.json_nesting import nesting_depth
from service.errors import InvalidRequest

__all__ = ["MAX_JSON_DEPTH", "parse_body", "parse_json", "validate"]

ModelT = TypeVar("ModelT", bound=BaseModel)


MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays/objects accepted in a request body (tool schemas need ~20)."""


def parse_json(raw: bytes) -> dict[str, Any]:
    too_deep = InvalidRequest(
        f"the request body is nested too deeply (over {MAX_JSON_DEPTH} levels of arrays/objects)"
    )
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if nesting_depth(data) > MAX_JSON_DEPTH:
        raise too_deep
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
