"""Two gateways on one PostgreSQL registry, in-process against a fake vLLM each (as two
machines with embedded engines), their adapter stores one shared folder: tenants, keys and
adapter versions made through either are the other's too, and a promotion made on one is
what the other serves from its next request on (the delay is measured). A write while
another gateway holds the registry's write lock is a 503 that names no server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from adapters.postgres_db import WRITE_LOCK
from lorag.settings import Settings
from tests.conftest import BASE_NAME
from tests.postgres import PostgresServer
from tests.service.fake_vllm import (
    ADMIN_KEY,
    FakeVLLM,
    admin,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    running_fake,
    set_mode,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
ASK = {"model": "support", "messages": [{"role": "user", "content": "Which version?"}]}
VISIBLE_WITHIN_S = 1.0


@pytest.fixture
def shared_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.new_registry_url()
    yield url
    postgres.drop(url)


@pytest.fixture
def other_fake() -> Iterator[FakeVLLM]:
    """The second gateway's own engine."""
    with running_fake(BASE_NAME) as fake:
        yield fake


@pytest.fixture
def two_gateways(
    tmp_path: Path,
    fake: FakeVLLM,
    other_fake: FakeVLLM,
    base_model_dir: Path,
    shared_url: str,
) -> tuple[Settings, Settings]:
    """Settings of gateways A and B: data dirs of their own, one registry, one adapter store
    (B's `adapters` folder is A's, as a shared volume would be)."""
    store = tmp_path / "shared-adapters"
    store.mkdir()
    dirs = (tmp_path / "a", tmp_path / "b")
    for data_dir in dirs:
        data_dir.mkdir()
        (data_dir / "adapters").symlink_to(store, target_is_directory=True)
    return (
        gateway_settings(dirs[0], [fake.url], base_model_dir, registry_url=shared_url),
        gateway_settings(dirs[1], [other_fake.url], base_model_dir, registry_url=shared_url),
    )


async def test_a_promotion_on_one_gateway_is_served_by_the_other_at_once(
    two_gateways: tuple[Settings, Settings],
    other_fake: FakeVLLM,
    tmp_path: Path,
    base_model_dir: Path,
) -> None:
    first = tiny_adapter(base_model_dir, tmp_path / "first", seed=1)
    second = tiny_adapter(base_model_dir, tmp_path / "second", seed=2)
    settings_a, settings_b = two_gateways
    async with gateway_client(settings_a) as a, gateway_client(settings_b) as b:
        key = await create_tenant(a, "acme")
        # one numbering across gateways: B's import of the same name is the next version
        assert await import_adapter(a, first, "support", owner="acme") == "support@v1"
        assert await import_adapter(b, second, "support", owner="acme") == "support@v2"
        await set_mode(a, "acme", "support", "support@v1")
        answer = await b.post(CHAT, json=ASK, headers=bearer(key))  # A's key, on B
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-lorag-adapter"] == "support@v1"

        await set_mode(a, "acme", "support", "support@v2")  # the promotion, on A
        promoted = time.perf_counter()
        served = []
        while time.perf_counter() - promoted < VISIBLE_WITHIN_S:
            answer = await b.post(CHAT, json=ASK, headers=bearer(key))
            served.append(answer.headers["x-lorag-adapter"])
            if served[-1] == "support@v2":
                break
        delay_s = time.perf_counter() - promoted
        print(f"promotion on A served by B after {delay_s * 1000:.1f} ms ({len(served)} request)")
        assert served == ["support@v2"], "B served the old version after the promotion"
        assert delay_s < VISIBLE_WITHIN_S
        # B loaded it into its own engine from the shared store
        assert other_fake.loaded() == ["support@v1", "support@v2"]
        assert answer.json()["choices"][0]["message"]["content"].startswith("support@v2 heard")

        rotated = (await admin(b, "POST", "/admin/tenants/acme/rotate-key"))["api_key"]
        old = await a.post(CHAT, json=ASK, headers=bearer(key))  # rotated on B: refused on A
        new = await a.post(CHAT, json=ASK, headers=bearer(rotated))
        assert (old.status_code, new.status_code) == (401, 200)
        history = await admin(b, "GET", "/admin/tenants/acme/modes/support/history")
        assert [c["to_target"] for c in history["data"]] == ["support@v2", "support@v1"]


async def test_a_write_waits_for_another_gateways_write_lock(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path, shared_url: str, postgres: PostgresServer
) -> None:
    settings = gateway_settings(
        tmp_path / "data",
        [fake.url],
        base_model_dir,
        registry_url=shared_url,
        registry_busy_timeout_s=0.5,
    )
    async with gateway_client(settings) as gateway:
        key = await create_tenant(gateway, "acme")
        with psycopg.connect(shared_url, autocommit=True) as other_gateway:
            other_gateway.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
            started = time.perf_counter()
            write = asyncio.create_task(
                gateway.put(
                    "/admin/tenants/acme/modes/plain",
                    json={"target": "base"},
                    headers={"x-admin-key": ADMIN_KEY},
                )
            )
            await asyncio.sleep(0.1)
            health = await gateway.get("/health")  # the write waits on a registry thread
            answer = await write
            waited_s = time.perf_counter() - started
            # requests still route: reads never wait for the write lock
            chat = await gateway.post(CHAT, json={**ASK, "model": BASE_NAME}, headers=bearer(key))
            with contextlib.suppress(psycopg.Error):
                other_gateway.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
    assert health.status_code == 200 and chat.status_code == 200, chat.text
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("service_unavailable", "registry_busy")
    for secret in (postgres.password, shared_url, f":{postgres.port}"):
        assert secret not in error["message"]
    assert 0.5 <= waited_s < 5
