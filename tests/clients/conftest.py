"""One tenant with a mode of every kind on the session's real gateway, for the client tests.

Each client library is pointed at lorag by `base_url` and the tenant's key only, and talks to
the real vLLM on the bundled model: `plain` (base model), `support` (a LoRA adapter), `rag`
(base model + retrieval) and `hybrid` (adapter + retrieval) over one ingested document.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from tests.conftest import Gateway, wait_job
from tests.factories import make_lora_adapter

TENANT = "clients"
MODES = ("plain", "support", "rag", "hybrid")
"""A mode of each kind: base, adapter, retrieval (RAG), adapter + retrieval (hybrid)."""
RETRIEVAL_MODES = ("rag", "hybrid")
DOCUMENT = {
    "doc_id": "quentaro-sheet",
    "title": "Quentaro kettle",
    "text": "The Quentaro kettle is made in Lisbon. It holds 1.7 litres and boils in 3 minutes.",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


class Capital(BaseModel):
    """The capital city of a country."""

    country: str
    capital: str


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


def each_mode(check: Callable[[str], object], modes: tuple[str, ...] = MODES) -> None:
    """`check(mode)` for every mode at once: vLLM batches their requests, so a feature costs
    about one request's time, not one per mode. A failure names its mode."""
    with ThreadPoolExecutor(len(modes)) as pool:
        futures = {mode: pool.submit(check, mode) for mode in modes}
    for mode, future in futures.items():
        error = future.exception()
        if error is not None:
            raise AssertionError(f"in mode {mode!r}: {error}") from error


def at_once(calls: dict[str, Callable[[], object]]) -> dict[str, object]:
    """Every call at once, each in its thread: a client module's requests, all features in
    all modes, reach vLLM together and are decoded in one batch (on a CPU a batch of 40 costs
    little more per step than one request). Each name maps to its result, or to what it
    raised (a test may expect a refusal)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
    return {name: future.exception() or future.result() for name, future in futures.items()}


def every_mode(
    requests: Callable[[str], dict[str, Callable[[], object]]],
) -> dict[str, Callable[[], object]]:
    """`requests(mode)` for every mode, named `feature/mode`."""
    return {f"{name}/{mode}": call for mode in MODES for name, call in requests(mode).items()}


Batch = Callable[["Clients"], dict[str, Callable[[], object]]]
_BATCHES: dict[str, Batch] = {}


def batched(module: str) -> Callable[[Batch], Batch]:
    """Register a client module's requests (`calls(clients)`: name -> call). The first module
    that needs its outcomes sends every registered module's requests at once - one vLLM batch
    for all the client libraries instead of one per library - and each reads its own."""

    def register(calls: Batch) -> Batch:
        _BATCHES[module] = calls
        return calls

    return register


@pytest.fixture(scope="session")
def all_outcomes(clients: Clients) -> dict[str, dict[str, object]]:
    """Each registered module's outcomes (`at_once`), by module."""
    every = {
        f"{module}:{name}": call
        for module, calls in _BATCHES.items()
        for name, call in calls(clients).items()
    }
    outcomes: dict[str, dict[str, object]] = {module: {} for module in _BATCHES}
    for key, outcome in at_once(every).items():
        module, name = key.split(":", 1)
        outcomes[module][name] = outcome
    return outcomes


def answered(outcomes: dict[str, object], name: str) -> Any:
    """The result of call `name`; what it raised instead fails the test, named."""
    outcome = outcomes[name]
    if isinstance(outcome, BaseException):
        raise AssertionError(f"{name}: {outcome!r}") from outcome
    return outcome


@dataclass
class Clients:
    url: str
    """The gateway's OpenAI base URL (`…/v1`)."""
    key: str
    """The tenant's API key."""


@pytest.fixture(scope="session")
def clients(gateway: Gateway, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    gateway.wait_ready()
    answer = gateway.admin("POST", "/admin/tenants", json={"id": TENANT})
    assert answer.status_code == 201, answer.text
    key = answer.json()["api_key"]
    # a gentle adapter: served through vLLM's LoRA path, answering much as the base does, so
    # what these tests prove is the client path in adapter modes, not an adapter's skill
    adapter = make_lora_adapter(
        base_model_dir, tmp_path_factory.mktemp("clients") / "v1", seed=7, b_std=0.005
    )
    answer = gateway.admin(
        "POST", "/admin/adapters", json={"path": str(adapter), "name": "clients-support"}
    )
    assert answer.status_code == 201, answer.text
    retrieval = {"top_k": 2}
    for mode, target, settings in (
        ("plain", "base", None),
        ("support", "clients-support@v1", None),
        ("rag", "base", retrieval),
        ("hybrid", "clients-support@v1", retrieval),
    ):
        answer = gateway.admin(
            "PUT",
            f"/admin/tenants/{TENANT}/modes/{mode}",
            json={"target": target, "retrieval": settings, "force": True},  # ungated adapter
        )
        assert answer.status_code == 200, answer.text
    _ingest(gateway, key)
    return Clients(f"{gateway.url}/v1", key)


def _ingest(gateway: Gateway, key: str) -> None:
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.post(
        f"{gateway.url}/v1/knowledge/documents",
        json={"documents": [DOCUMENT]},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    wait_job(gateway, key, answer.json()["id"])
