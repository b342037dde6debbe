"""Every lorag error, in every package, maps to a 4xx/5xx status and a valid OpenAI envelope.

The test imports every module of every package that defines an exception class, then walks
all subclasses of `lorag.errors.LoragError`: a new error anywhere is checked without being
listed here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lorag.errors import ClientError, LoragError, ServerError
from service.errors import to_envelope

PACKAGES = ("lorag", "service", "adapters", "ingest", "train")
ROOT = Path(__file__).resolve().parent.parent
_DEFINES_ERROR = re.compile(
    r"^class \w+\([^)]*(Error|Exception|NotFound|Invalid|Unavailable|Conflict|Timeout|"
    r"Forbidden|Unauthorized|TooMany|TooLarge)",
    re.MULTILINE,
)
"""A module that defines an exception class (named for what it is, as all of ours are)."""
OPENAI_TYPES = {
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "server_error",
    "service_unavailable",
    "timeout",
}
PACKAGE_ROOTS = {"LoragError", "AdapterError", "IngestError", "TrainError", "UpstreamError"}
"""Bases that are neither client nor server errors: each subclass says which it is."""


def _modules_defining_classes() -> Iterator[str]:
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            path = ROOT / Path(*info.name.split("."))
            source = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
            if source.is_file() and _DEFINES_ERROR.search(source.read_text(encoding="utf-8")):
                yield info.name


def _all_errors() -> list[type[LoragError]]:
    for module in _modules_defining_classes():
        importlib.import_module(module)
    found: list[type[LoragError]] = []
    pending = [LoragError]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


ERRORS = _all_errors()


def _instance(cls: type[LoragError]) -> LoragError:
    error = cls.__new__(cls)
    LoragError.__init__(error, f"{cls.__name__} happened", param="some_param")
    return error


def test_every_package_error_is_found() -> None:
    modules = {cls.__module__ for cls in ERRORS}
    assert {"lorag.errors", "service.errors", "adapters.errors", "ingest.errors"} <= modules
    assert {"train.errors", "service.upstream"} <= modules
    assert len(ERRORS) > 40


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_error_maps_to_an_envelope(cls: type[LoragError]) -> None:
    assert 400 <= cls.status < 600
    assert cls.type in OPENAI_TYPES
    assert cls.code is None or re.fullmatch(r"[a-z][a-z0-9_]*", cls.code)
    if cls.status < 500:
        assert issubclass(cls, ClientError), "a 4xx error is a ClientError"
    elif cls.__name__ not in PACKAGE_ROOTS:
        assert issubclass(cls, ServerError), "a 5xx error is a ServerError"
    if issubclass(cls, ClientError):
        assert cls.status < 500
    if issubclass(cls, ServerError):
        assert cls.status >= 500

    status, body = to_envelope(_instance(cls))
    assert status == cls.status
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == f"{cls.__name__} happened"
    assert error["type"] == cls.type
    assert error["param"] == "some_param"
    assert error["code"] == cls.code


def test_foreign_exceptions_are_500() -> None:
    status, body = to_envelope(RuntimeError())
    assert status == 500
    assert body == {
        "error": {"message": "RuntimeError", "type": "server_error", "param": None, "code": None}
    }
