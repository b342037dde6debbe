"""Adapters for vLLM servers that do not share the gateway's folder, in-process and fast:

- the gateway's `/internal/adapters` endpoint opens to the replica key only, serves the
  registry's versions and nothing else;
- the replica's cache (what lorag's resolver plugin runs in vLLM) fetches a version from the
  real gateway app, verifies it against the registry's sha256, refuses a tampered download,
  never shows a half-written folder, and downloads nothing on a cache hit;
- the plugin's environment, and the settings that turn the delivery on;
- `path` delivery: a server that cannot see the store is a configuration error naming it;
  `resolver` delivery: a load names the version only.

The same with a real second vLLM server and the plugin installed: test_replica_adapters_live.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from adapters.artifact_files import ARTIFACT_FILES, WEIGHTS_FILE
from adapters.models import AdapterVersion
from lorag.errors import ConfigurationError
from lorag.settings import Settings
from service.app import build_app
from service.engine.lora_resolver import ResolverConfig
from service.engine.remote import RemoteEngine
from service.engine.replica_cache import AdapterFetchFailed, ReplicaAdapterCache
from service.lora import LoraManager
from service.upstream import Upstream, UpstreamError
from tests.service.fake_vllm import (
    ADMIN_KEY,
    FakeVLLM,
    admin,
    assert_envelope,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
REPLICA_KEY = "replica-key-0123456789abcdef0123456789"  # at least 32 characters
GATEWAY = "http://gateway"


@pytest.fixture
def replica_settings(tmp_path: Path, fake: FakeVLLM, base_model_dir: Path) -> Settings:
    return gateway_settings(tmp_path / "data", [fake.url], base_model_dir, replica_key=REPLICA_KEY)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=GATEWAY, timeout=60)


def cache_of(
    app: FastAPI, folder: Path, key: str = REPLICA_KEY, **kwargs: Any
) -> ReplicaAdapterCache:
    transport = kwargs.pop("transport", None) or httpx.ASGITransport(app=app)
    return ReplicaAdapterCache(GATEWAY, key, folder, transport=transport, **kwargs)


async def published(
    client: httpx.AsyncClient, base_model_dir: Path, folder: Path
) -> dict[str, Any]:
    """A version imported through the admin API: the registry's record of it."""
    served = await import_adapter(client, tiny_adapter(base_model_dir, folder, seed=7), "support")
    name, _, version = served.partition("@v")
    versions = (await admin(client, "GET", f"/admin/adapters/{name}"))["data"]
    return next(v for v in versions if v["version"] == int(version))


def store_folder(settings: Settings, digest: str) -> Path:
    return settings.adapters_dir / "sha256" / digest


def cached(folder: Path) -> list[str]:
    """What a replica's cache shows: complete folders, and downloads in progress."""
    return sorted(
        str(path.relative_to(folder))
        for kind in ("sha256", "tmp")
        if (folder / kind).is_dir()
        for path in (folder / kind).iterdir()
    )


# --- the gateway's endpoint ---------------------------------------------------------------
async def test_only_the_replica_key_opens_the_endpoint(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        tenant_key = await create_tenant(client, "acme")
        version = await published(client, base_model_dir, tmp_path / "v1")
        path = "/internal/adapters/support/versions/1"
        for headers in (
            {},
            bearer("wrong-key-0123456789abcdef0123456789"),
            bearer(tenant_key),
            bearer(ADMIN_KEY),
            {"x-admin-key": ADMIN_KEY},
            {"authorization": REPLICA_KEY},  # not a bearer token
        ):
            for url in (path, f"{path}/files/{WEIGHTS_FILE}"):
                assert_envelope(
                    await client.get(url, headers=headers), 401, type="authentication_error"
                )
        described = (await client.get(path, headers=bearer(REPLICA_KEY))).json()
        assert described == {
            "name": "support",
            "version": 1,
            "served_name": "support@v1",
            "sha256": version["sha256"],
            "size_bytes": version["size_bytes"],
            "files": list(ARTIFACT_FILES),
        }
        stored = store_folder(replica_settings, version["sha256"])
        for name in ARTIFACT_FILES:
            answer = await client.get(f"{path}/files/{name}", headers=bearer(REPLICA_KEY))
            assert answer.status_code == 200
            assert answer.content == (stored / name).read_bytes()


async def test_the_endpoint_serves_registry_versions_only(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        await published(client, base_model_dir, tmp_path / "v1")
        key = bearer(REPLICA_KEY)
        for path, status in (
            ("/internal/adapters/support/versions/2", 404),
            ("/internal/adapters/other/versions/1", 404),
            ("/internal/adapters/support/versions/1/files/registry.sqlite3", 404),
            ("/internal/adapters/support/versions/1/files/..%2F..%2Fregistry.sqlite3", 404),
            ("/internal/adapters/..%2F..%2Fregistry.sqlite3/versions/1", 404),
            ("/internal/adapters/..support/versions/1", 400),
            ("/internal/adapters/Support/versions/1", 400),
            ("/internal/adapters/support/versions/0", 400),
            ("/internal/adapters/support/versions/v1", 400),
        ):
            answer = await client.get(path, headers=key)
            assert answer.status_code == status, (path, answer.text)


async def test_the_endpoint_is_off_without_a_replica_key(settings: Settings) -> None:
    async with gateway_client(settings) as client:
        answer = await client.get("/internal/adapters/support/versions/1", headers=bearer("x"))
        error = assert_envelope(answer, 403, type="permission_error")
        assert "LORAG_REPLICA_KEY" in error["message"]
        assert "/internal" not in (await client.get("/openapi.json")).text


# --- the replica's cache ------------------------------------------------------------------
async def test_the_cache_fetches_verifies_and_reuses(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        version = await published(client, base_model_dir, tmp_path / "v1")
        cache = cache_of(app, tmp_path / "replica")
        folder = await cache.folder("support@v1")
        assert folder == tmp_path / "replica" / "sha256" / version["sha256"]
        stored = store_folder(replica_settings, version["sha256"])
        for name in ARTIFACT_FILES:
            assert (folder / name).read_bytes() == (stored / name).read_bytes()
        assert cached(tmp_path / "replica") == [f"sha256/{version['sha256']}"]
        # a hit: asked again (vLLM resolves again after every unload), nothing is downloaded
        assert await cache.folder("support@v1") == folder
        assert cache.downloads == 1
        # at once from two requests: one complete folder, both verified
        fresh = cache_of(app, tmp_path / "other-replica")
        both = await asyncio.gather(fresh.folder("support@v1"), fresh.folder("support@v1"))
        assert both[0] == both[1] and cached(tmp_path / "other-replica") == [
            f"sha256/{version['sha256']}"
        ]
        # what is not a version of the registry is not this resolver's
        for name in ("support@v2", "support", "smollm2-135m-instruct", "../support@v1", "x@v0"):
            assert await cache.folder(name) is None


async def test_a_tampered_download_is_refused(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        version = await published(client, base_model_dir, tmp_path / "v1")
        weights = store_folder(replica_settings, version["sha256"]) / WEIGHTS_FILE
        weights.chmod(0o644)
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # same size, one bit pattern changed
        weights.write_bytes(bytes(data))
        cache = cache_of(app, tmp_path / "replica")
        with pytest.raises(AdapterFetchFailed, match="registry says"):
            await cache.folder("support@v1")
        assert cached(tmp_path / "replica") == []  # nothing kept, no download left behind


async def test_more_bytes_than_the_registry_size_are_refused(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        await published(client, base_model_dir, tmp_path / "v1")

        async def padded(request: httpx.Request) -> httpx.Response:
            answer = await httpx.ASGITransport(app=app).handle_async_request(request)
            body = await answer.aread()
            if request.url.path.endswith(WEIGHTS_FILE):
                body += b"\0" * 4096
            return httpx.Response(answer.status_code, content=body)

        cache = cache_of(app, tmp_path / "replica", transport=httpx.MockTransport(padded))
        with pytest.raises(AdapterFetchFailed, match="more than the registry's size"):
            await cache.folder("support@v1")
        assert cached(tmp_path / "replica") == []


async def test_no_half_written_folder_is_ever_visible(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    replica = tmp_path / "replica"
    async with running(replica_settings) as app, client_of(app) as client:
        version = await published(client, base_model_dir, tmp_path / "v1")
        seen: list[list[str]] = []

        async def watching(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith(WEIGHTS_FILE):  # the config file is already written
                seen.append(cached(replica))
            answer = await httpx.ASGITransport(app=app).handle_async_request(request)
            return httpx.Response(answer.status_code, content=await answer.aread())

        cache = cache_of(app, replica, transport=httpx.MockTransport(watching))
        folder = await cache.folder("support@v1")
        assert folder is not None
        # mid-download: one folder under tmp/, nothing under sha256/
        assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].startswith("tmp/")
        assert cached(replica) == [f"sha256/{version['sha256']}"]
        # a damaged cached copy is replaced by a verified one
        (folder / WEIGHTS_FILE).chmod(0o644)
        (folder / WEIGHTS_FILE).write_bytes(b"damaged")
        assert await cache.folder("support@v1") == folder
        assert cache.downloads == 2
        assert (folder / WEIGHTS_FILE).read_bytes() == (
            store_folder(replica_settings, version["sha256"]) / WEIGHTS_FILE
        ).read_bytes()


async def test_a_wrong_replica_key_is_a_clear_failure(
    replica_settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    async with running(replica_settings) as app, client_of(app) as client:
        await published(client, base_model_dir, tmp_path / "v1")
        cache = cache_of(app, tmp_path / "replica", key="not-the-replica-key-0123456789abcdef")
        with pytest.raises(AdapterFetchFailed, match="LORAG_RESOLVER_KEY"):
            await cache.folder("support@v1")


# --- configuration ------------------------------------------------------------------------
def test_the_plugin_reads_its_environment(tmp_path: Path) -> None:
    assert ResolverConfig.from_environment({}) is None  # off: the embedded engine, by hand
    url = {"LORAG_RESOLVER_URL": "http://gateway:8000"}
    cache = {"LORAG_RESOLVER_CACHE": str(tmp_path / "cache")}
    for environ, problem in (
        ({**url, "LORAG_RESOLVER_KEY": REPLICA_KEY}, "LORAG_RESOLVER_CACHE"),
        ({**url, **cache}, "LORAG_REPLICA_KEY"),
        ({**url, **cache, "LORAG_RESOLVER_KEY_FILE": str(tmp_path / "none")}, "cannot be read"),
        ({"LORAG_RESOLVER_URL": "gateway:8000", **cache}, "http://"),
    ):
        with pytest.raises(ConfigurationError, match=problem):
            ResolverConfig.from_environment(environ)
    key_file = tmp_path / "replica.key"
    key_file.write_text(REPLICA_KEY + "\n")
    config = ResolverConfig.from_environment(
        {**url, **cache, "LORAG_RESOLVER_KEY_FILE": str(key_file)}
    )
    assert config == ResolverConfig("http://gateway:8000", REPLICA_KEY, tmp_path / "cache")
    assert REPLICA_KEY not in repr(config)
    both = {**url, **cache, "LORAG_RESOLVER_KEY": REPLICA_KEY, "LORAG_RESOLVER_KEY_FILE": "f"}
    with pytest.raises(ConfigurationError, match="not both"):
        ResolverConfig.from_environment(both)


def test_resolver_delivery_needs_remote_servers_and_a_long_key() -> None:
    remote = {"engine": "remote", "vllm_urls": ["http://vllm:8000"]}
    for fields, problem in (
        ({"adapter_delivery": "resolver"}, "LORAG_ENGINE=remote"),
        ({**remote, "adapter_delivery": "resolver"}, "needs LORAG_REPLICA_KEY"),
        ({"replica_key": "short-key"}, "at least 32"),
    ):
        with pytest.raises(ValidationError, match=problem):
            Settings(**fields)
    assert Settings(replica_key="  ").replica_key is None  # blank = off
    settings = Settings(**remote, adapter_delivery="resolver", replica_key=REPLICA_KEY)
    assert REPLICA_KEY not in repr(settings)


# --- the gateway's loads --------------------------------------------------------------------
async def test_a_server_that_cannot_see_the_store_is_named(
    fake: FakeVLLM, settings: Settings, base_model_dir: Path, tmp_path: Path
) -> None:
    fake.faults.load_status = 404  # what vLLM answers for a folder it cannot find
    fake.faults.message = "Loading lora support@v1 failed: No adapter found for <path>"
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "v1"), "support")
        body = {"target": "support@v1", "force": True}
        promoted = await client.put(
            "/admin/tenants/acme/modes/support", json=body, headers={"x-admin-key": ADMIN_KEY}
        )
        error = assert_envelope(promoted, 500, type="server_error")
        assert error["code"] == "configuration_error"
        message = error["message"]
        assert "vLLM server 1 of 1 (LORAG_VLLM_URLS) cannot read the gateway's adapter store" in (
            message
        )
        assert "LORAG_ADAPTER_DELIVERY=resolver" in message and fake.url not in message
        assert str(settings.data_dir) not in message
        # put live without loading: the first request meets the same error, once, not a 404 loop
        await client.put(
            "/admin/tenants/acme/modes/support",
            json={**body, "preload": False},
            headers={"x-admin-key": ADMIN_KEY},
        )
        ask = {"model": "support", "messages": [{"role": "user", "content": "hi"}]}
        answer = await client.post("/v1/chat/completions", json=ask, headers=bearer(key))
        assert assert_envelope(answer, 500, type="server_error")["message"] == message
        assert fake.loaded() == ["support@v1", "support@v1"]  # the promotion's, the request's
        assert not fake.requests("/v1/chat/completions")


class Recording(Upstream):
    """An upstream that records each POST and answers with `answer(url)`."""

    def __init__(self, answer: Callable[[str], bytes]) -> None:
        super().__init__(timeout_s=5)
        self.answer = answer
        self.posts: list[tuple[str, dict[str, Any]]] = []

    async def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> bytes:
        self.posts.append((url, body))
        return self.answer(url)


def adapter(name: str) -> AdapterVersion:
    return AdapterVersion(
        name, 1, "base", 8, 16.0, ("q_proj",), "0" * 64, 1, datetime.now(UTC), "import"
    )


async def test_resolver_delivery_loads_by_name(tmp_path: Path) -> None:
    def unknown(url: str) -> bytes:
        raise UpstreamError(404, "The model `support@v1` does not exist.")

    def never(version: object) -> Path:
        raise AssertionError("resolver delivery needs no path")

    ok = Recording(lambda url: json.dumps({"prompt": "!"}).encode())
    lora = LoraManager(
        RemoteEngine(["http://a", "http://b"]), ok, never, cap=4, delivery="resolver"
    )
    assert await lora.ensure_loaded("http://b", adapter("support")) == "support@v1"
    assert ok.posts == [("http://b/detokenize", {"model": "support@v1", "tokens": [0]})]
    assert lora.loaded("http://b") == ["support@v1"]
    await lora.unload("support@v1")  # by name, as ever
    assert ok.posts[-1] == ("http://b/v1/unload_lora_adapter", {"lora_name": "support@v1"})

    missing = Recording(unknown)
    lora = LoraManager(RemoteEngine(["http://a"]), missing, never, cap=4, delivery="resolver")
    with pytest.raises(ConfigurationError, match=r"server 1 of 1 .* resolver plugin installed"):
        await lora.ensure_loaded("http://a", adapter("support"))
    assert lora.loaded("http://a") == []
