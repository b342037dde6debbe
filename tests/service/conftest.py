"""Fixtures of the fast gateway tests: a fake vLLM per test module, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lorag.settings import Settings
from tests.conftest import BASE_NAME
from tests.service.fake_vllm import FakeVLLM, gateway_settings, running_fake


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeVLLM]:
    with running_fake(BASE_NAME) as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeVLLM) -> FakeVLLM:
    fake_server.reset()
    return fake_server


@pytest.fixture
def settings(tmp_path: Path, fake: FakeVLLM, base_model_dir: Path) -> Settings:
    return gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
