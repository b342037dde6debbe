"""The engine accepts only the gateway, and tenants never share its prefix cache: fast, against
the fake vLLM (which wants its key as vLLM does) and lorag's guard middleware on a tiny app.
`test_engine_access.py` checks the same against the real embedded vLLM.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lorag.settings import Settings
from service.cache_salt import CacheSalts
from service.engine import EmbeddedEngine, EmbeddedEngineConfig, build_engine, vllm_guard
from service.engine.embedded import GUARD_MIDDLEWARE
from tests.conftest import BASE_NAME
from tests.service.fake_vllm import (
    VLLM_KEY,
    FakeVLLM,
    assert_envelope,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    set_mode,
    sse_data,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello there, gateway."}]
SALT = re.compile(r"[0-9a-f]{64}")


# --- the gateway's key ----------------------------------------------------------------------
async def test_every_call_to_the_engine_carries_its_key(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path
) -> None:
    """Chat, completions, streams, adapter loads and unloads, readiness probes: all with the key
    (the fake refuses anything without it, as the embedded vLLM does)."""
    settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir, max_cpu_loras=1)
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        for name, seed in (("alpha", 1), ("beta", 2)):
            folder = tiny_adapter(base_model_dir, tmp_path / name, seed)
            await import_adapter(client, folder, name, owner="acme")
            await set_mode(client, "acme", name, f"{name}@v1", preload=False)
        answers = [
            await client.post(
                CHAT, json={"model": "alpha", "messages": HELLO}, headers=bearer(key)
            ),
            await client.post(CHAT, json={"model": "beta", "messages": HELLO}, headers=bearer(key)),
            await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO, "stream": True}),
            await client.post("/v1/completions", json={"model": BASE_NAME, "prompt": "Hi"}),
            await client.get("/ready"),
        ]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert fake.unloaded() == ["alpha@v1"]  # beta over the cap of one: alpha went
    assert fake.refused == []
    sent = {r.path for r in fake.requests()}
    assert {CHAT, "/v1/completions", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"} <= sent
    assert {r.authorization for r in fake.requests()} == {f"Bearer {VLLM_KEY}"}


async def test_an_engine_refusing_the_gateways_key_is_503_not_the_callers_401(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path
) -> None:
    settings = gateway_settings(
        tmp_path / "data", [fake.url], base_model_dir, vllm_api_key="not-the-engines-key"
    )
    async with gateway_client(settings) as client:
        chat = await client.post(CHAT, json={"model": BASE_NAME, "messages": HELLO})
        stream = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO, "stream": True}
        )
    for answer in (chat, stream):
        error = assert_envelope(answer, 503, type="service_unavailable")
        assert error["code"] == "engine_unavailable"
        assert "not-the-engines-key" not in error["message"]
    assert fake.refused == [CHAT]  # then out of rotation: the stream was refused at once


def test_the_embedded_engine_gets_its_key_in_its_environment_never_its_command_line(
    tmp_path: Path,
) -> None:
    def engine(key: str | None = None) -> EmbeddedEngine:
        config = EmbeddedEngineConfig(
            model="m", served_name="m", log_path=tmp_path / "vllm.log", api_key=key
        )
        return EmbeddedEngine(config)

    chosen = engine("operator-chosen-key")
    assert chosen.api_key == "operator-chosen-key"
    assert "operator-chosen-key" not in repr(chosen.config)
    first, second = engine(), engine()
    assert first.api_key and second.api_key and first.api_key != second.api_key  # random
    assert len(first.api_key) >= 32
    for each in (chosen, first):
        command = each._command(8000)
        assert each.api_key not in " ".join(command)
        assert command[command.index("--middleware") + 1] == GUARD_MIDDLEWARE
        assert each._environment()["VLLM_API_KEY"] == each.api_key


def test_the_key_setting_reaches_both_engines(tmp_path: Path, base_model_dir: Path) -> None:
    remote = build_engine(gateway_settings(tmp_path, ["http://127.0.0.1:9"], base_model_dir))
    assert remote.api_key == VLLM_KEY
    keyless = gateway_settings(tmp_path, ["http://127.0.0.1:9"], base_model_dir, vllm_api_key="")
    assert keyless.vllm_api_key is None and build_engine(keyless).api_key is None
    embedded = Settings(
        data_dir=tmp_path, base_model=str(base_model_dir), vllm_api_key="the-embedded-key"
    )
    assert build_engine(embedded).api_key == "the-embedded-key"


def test_the_key_never_goes_on_vllms_command_line_through_extra_args() -> None:
    for args in ("--api-key,abc", "--max-num-seqs,4,--api-key=abc"):
        with pytest.raises(ValidationError, match="LORAG_VLLM_API_KEY"):
            Settings(vllm_extra_args=args)
    assert Settings(vllm_extra_args="--max-num-seqs,4").vllm_extra_args == ["--max-num-seqs", "4"]


# --- the guard inside vLLM ------------------------------------------------------------------
def guarded_app(key: str | None) -> vllm_guard.GatewayOnly:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    paths = ["/health", "/v1/models", "/adapters", "/invocations", "/metrics", "/tokenize"]
    inner = Starlette(routes=[Route(path, ok, methods=["GET", "POST"]) for path in paths])
    return vllm_guard.GatewayOnly(inner, api_key=key)


async def test_the_guard_opens_only_health_without_the_key() -> None:
    """vLLM's own check leaves `/adapters` (load an adapter), `/invocations` (generate) and
    `/metrics` open: the guard closes everything but `/health`."""
    transport = httpx.ASGITransport(app=guarded_app("engine-key"))
    async with httpx.AsyncClient(transport=transport, base_url="http://vllm") as client:
        for path in ("/v1/models", "/adapters", "/invocations", "/metrics", "/tokenize"):
            for headers in ({}, bearer("wrong"), {"authorization": "engine-key"}):
                refused = await client.post(path, headers=headers)
                assert refused.status_code == 401, (path, headers)
                assert refused.json() == {"error": "Unauthorized"}
            assert (await client.post(path, headers=bearer("engine-key"))).text == "ok"
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/../adapters")).status_code == 401


def test_the_guard_refuses_to_run_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_guard, "_vllm_api_key", lambda: None)
    with pytest.raises(RuntimeError, match="VLLM_API_KEY"):
        guarded_app(None)
    monkeypatch.setattr(vllm_guard, "_vllm_api_key", lambda: "from-vllm-envs")
    assert guarded_app(None)._carries_key(
        {"headers": [(b"authorization", b"Bearer from-vllm-envs")]}
    )


# --- prefix-cache salts ---------------------------------------------------------------------
async def test_each_tenant_gets_its_own_cache_salt_and_no_client_picks_one(
    settings, fake: FakeVLLM
) -> None:
    async with gateway_client(settings) as client:
        keys = {name: await create_tenant(client, name) for name in ("acme", "globex")}

        async def chat(key: str | None, **extra: object) -> httpx.Response:
            body = {"model": BASE_NAME, "messages": HELLO, **extra}
            return await client.post(CHAT, json=body, headers=bearer(key) if key else {})

        answers = [
            await chat(keys["acme"]),
            await chat(keys["acme"], cache_salt="globex", stream=True),
            await chat(keys["globex"]),
            await chat(None),
            await chat(None, cache_salt="../not/valid@all"),  # vLLM would refuse this one
            await client.post(
                "/v1/completions",
                json={"model": BASE_NAME, "prompt": "Hi", "cache_salt": "mine"},
                headers=bearer(keys["acme"]),
            ),
        ]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert sse_data(answers[1].text)[-1] == "[DONE]"
    acme, acme_again, globex, anonymous, anonymous_again = (
        body["cache_salt"] for body in fake.bodies(CHAT)
    )
    [acme_text] = (body["cache_salt"] for body in fake.bodies("/v1/completions"))
    assert acme == acme_again == acme_text  # one tenant: one salt, whatever it sent
    assert anonymous == anonymous_again  # all anonymous callers share one
    assert len({acme, globex, anonymous}) == 3
    assert all(SALT.fullmatch(salt) for salt in (acme, globex, anonymous))


def test_salts_depend_on_the_deployments_secret() -> None:
    one, other = CacheSalts("key-one"), CacheSalts("key-two")
    assert one.for_tenant("acme") == CacheSalts("key-one").for_tenant("acme")
    assert one.for_tenant("acme") != other.for_tenant("acme")
    assert one.for_tenant(None) != one.for_tenant("anonymous")  # no tenant id can mean "none"
