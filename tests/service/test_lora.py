"""`LoraManager` bookkeeping with a fake upstream (no vLLM): in-use counts never leak, and an
unload survives other servers' adapters being loaded while it waits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.models import AdapterVersion
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from service.engine.remote import RemoteEngine
from service.handlers.completions import CompletionsHandler, Prepared
from service.lora import LoraManager
from service.metrics import Metrics
from service.retrieval import Retriever
from service.routing import Router, Target
from service.upstream import Upstream

URLS = ["http://engine-a", "http://engine-b"]


class FakeUpstream(Upstream):
    """Answers adapter (un)loads; completions fail the way a test asks. Unloads can be held."""

    def __init__(self, failure: BaseException | None = None) -> None:
        super().__init__(timeout_s=5)
        self.failure = failure
        self.calls: list[tuple[str, str]] = []
        self.hold_unloads = asyncio.Event()
        self.hold_unloads.set()

    async def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> bytes:
        base, _, path = url.partition("/v1/")
        self.calls.append((base, path))
        if path == "unload_lora_adapter":
            await self.hold_unloads.wait()
        if path.endswith("completions"):
            assert self.failure is not None
            raise self.failure
        return b"{}"


def adapter(name: str, version: int = 1) -> AdapterVersion:
    return AdapterVersion(
        name, version, "base", 8, 16.0, ("q_proj",), "0" * 64, 1, datetime.now(UTC), "import"
    )


def manager(upstream: Upstream) -> LoraManager:
    return LoraManager(RemoteEngine(URLS), upstream, lambda version: Path("/adapters"), cap=4)


def handler(lora: LoraManager, tmp_path: Path) -> CompletionsHandler:
    registry = SqliteRegistry(tmp_path / "registry.sqlite3", AdapterStore(tmp_path / "store"))
    retriever = Retriever(lambda: None, lambda: None, 2048)
    return CompletionsHandler(
        lora.engine, lora.upstream, Router(registry, "base"), lora, Metrics(), retriever
    )


@pytest.mark.parametrize("failure", [RuntimeError("bug"), asyncio.CancelledError()])
def test_an_unexpected_failure_releases_the_adapter(failure: BaseException, tmp_path: Path) -> None:
    upstream = FakeUpstream(failure)
    lora = manager(upstream)
    version = adapter("support")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    prepared = Prepared(
        "chat", Target("support", adapter=version), body, False, False, time.perf_counter()
    )

    async def scenario() -> None:
        with pytest.raises(type(failure)):
            await handler(lora, tmp_path)._complete(prepared, "request-1")

    asyncio.run(scenario())
    url = next(base for base, path in upstream.calls if path.endswith("completions"))
    assert lora.in_use(url, version.served_name) == 0


def test_release_after_acquire_returns_to_zero() -> None:
    lora = manager(FakeUpstream())

    async def scenario() -> None:
        name = await lora.acquire(URLS[0], adapter("support"))
        assert lora.in_use(URLS[0], name) == 1
        lora.release(URLS[0], name)
        lora.release(URLS[0], name)  # one release too many never goes below zero
        assert lora.in_use(URLS[0], name) == 0

    asyncio.run(scenario())


def test_unload_while_another_server_loads_an_adapter() -> None:
    upstream = FakeUpstream()
    lora = manager(upstream)

    async def scenario() -> None:
        await lora.ensure_loaded(URLS[0], adapter("old"))
        upstream.hold_unloads.clear()
        unloading = asyncio.create_task(lora.unload("old@v1"))
        await asyncio.sleep(0)  # the unload now waits on the engine
        await lora.ensure_loaded(URLS[1], adapter("new"))  # a first adapter on engine-b
        upstream.hold_unloads.set()
        await unloading

    asyncio.run(scenario())
    assert lora.loaded(URLS[0]) == [] and lora.loaded(URLS[1]) == ["new@v1"]
