"""The gateway's logic in-process against a fake vLLM (seconds, no model): routing of callers
and modes to the base model or adapter versions, and the loaded-adapter LRU with refcounts.
`test_gateway.py` and `test_adapters_live.py` check the same paths against the real engine."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from ingest.embedding import BUNDLED_MODEL_NAME
from tests.conftest import BASE_NAME
from tests.service.fake_vllm import (
    ADMIN_KEY,
    VLLM_KEY,
    FakeVLLM,
    Faults,
    admin,
    assert_envelope,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    reply_text,
    set_mode,
    sse_data,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello there, gateway."}]
NAMES = ("alpha", "beta", "gamma")


@pytest.fixture
def capped(tmp_path: Path, fake: FakeVLLM, base_model_dir: Path):
    """Settings keeping at most two adapters loaded."""
    return gateway_settings(tmp_path / "data", [fake.url], base_model_dir, max_cpu_loras=2)


def expected_chat(model: str, messages: list[dict] = HELLO) -> str:
    return reply_text(CHAT, {"model": model, "messages": messages})


# --- routing ------------------------------------------------------------------------------
async def test_anonymous_caller_gets_the_base_model(settings, fake: FakeVLLM) -> None:
    async with gateway_client(settings) as client:
        answer = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO, "max_tokens": 5, "vendor_field": 7}
        )
        text = await client.post("/v1/completions", json={"model": BASE_NAME, "prompt": "Hi"})
        models = await client.get("/v1/models")
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["model"] == BASE_NAME
    assert reply["choices"][0]["message"]["content"] == expected_chat(BASE_NAME)
    [sent] = fake.bodies(CHAT)
    assert sent["model"] == BASE_NAME
    assert sent["messages"] == HELLO
    assert sent["max_tokens"] == 5 and sent["vendor_field"] == 7  # unknown fields pass through
    assert "lorag" not in sent
    assert text.status_code == 200, text.text
    assert text.json()["choices"][0]["text"] == f"{BASE_NAME} read: Hi"
    assert fake.bodies("/v1/completions")[0]["prompt"] == "Hi"
    # the served chat models, then the knowledge base's embedding model (/v1/embeddings)
    cards = models.json()["data"]
    assert [m["id"] for m in cards] == [BASE_NAME, BUNDLED_MODEL_NAME]
    assert cards[0]["max_model_len"] == settings.max_model_len
    assert cards[1]["lorag"] == {"embedding": True} and cards[1]["max_model_len"] is None
    assert fake.loaded() == []


async def test_tenant_mode_loads_then_forwards_the_adapter_version(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        served = await import_adapter(
            client, tiny_adapter(base_model_dir, tmp_path / "a"), "support"
        )
        mode = await set_mode(client, "acme", "support", "support@v1", default=True, preload=False)
        await set_mode(client, "acme", "plain", "base")
        assert served == "support@v1" and mode["preloaded"] is False
        assert fake.calls() == []  # nothing loaded before the first request
        answer = await client.post(
            CHAT, json={"model": "support", "messages": HELLO}, headers=bearer(key)
        )
        again = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO}, headers=bearer(key)
        )
        plain = await client.post(
            CHAT, json={"model": "plain", "messages": HELLO}, headers=bearer(key)
        )
        models = await client.get("/v1/models", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    # loaded into vLLM first, under its version's own name, then used by that name
    assert fake.calls() == [
        ("/v1/load_lora_adapter", "support@v1"),
        (CHAT, "support@v1"),
        (CHAT, "support@v1"),  # the base model's name means the tenant's default mode
        (CHAT, BASE_NAME),
    ]
    load = fake.bodies("/v1/load_lora_adapter")[0]
    assert (Path(load["lora_path"]) / "adapter_config.json").is_file()
    assert Path(load["lora_path"]).is_relative_to(settings.data_dir.resolve())
    assert answer.json()["model"] == "support"  # the client's name, not the served one
    assert answer.json()["choices"][0]["message"]["content"] == expected_chat("support@v1")
    assert again.json()["model"] == BASE_NAME
    assert plain.json()["choices"][0]["message"]["content"] == expected_chat(BASE_NAME)
    assert sorted(m["id"] for m in models.json()["data"]) == [
        BUNDLED_MODEL_NAME,
        "plain",
        "support",
    ]


async def test_promotion_preloads_the_new_version(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        for seed in (1, 2):
            await import_adapter(
                client, tiny_adapter(base_model_dir, tmp_path / f"v{seed}", seed), "support"
            )
        first = await set_mode(client, "acme", "support", "support@v1")
        await client.post(CHAT, json={"model": "support", "messages": HELLO}, headers=bearer(key))
        second = await set_mode(client, "acme", "support", "support@v2")
        answer = await client.post(
            CHAT, json={"model": "support", "messages": HELLO}, headers=bearer(key)
        )
        admin_key = {"x-admin-key": ADMIN_KEY}
        in_use = await client.delete("/admin/adapters/support/versions/2", headers=admin_key)
        retired = await client.delete("/admin/adapters/support/versions/1", headers=admin_key)
    assert first["preloaded"] is True and second["preloaded"] is True
    assert fake.calls() == [
        ("/v1/load_lora_adapter", "support@v1"),
        (CHAT, "support@v1"),
        ("/v1/load_lora_adapter", "support@v2"),
        (CHAT, "support@v2"),
        ("/v1/unload_lora_adapter", "support@v1"),  # deleting the old version unloads it
    ]
    assert answer.json()["choices"][0]["message"]["content"] == expected_chat("support@v2")
    assert in_use.status_code == 409  # a mode still points at v2
    assert retired.status_code == 200 and retired.json() == {"deleted": "support@v1"}
    assert sorted(fake.adapters) == ["support@v2"]


async def test_adapter_lost_by_the_engine_is_loaded_again(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        await set_mode(client, "acme", "support", "support@v1")
        fake.forget_adapters()  # vLLM restarted behind the gateway's back
        answer = await client.post(
            CHAT, json={"model": "support", "messages": HELLO}, headers=bearer(key)
        )
    assert answer.status_code == 200, answer.text
    assert fake.calls() == [
        ("/v1/load_lora_adapter", "support@v1"),  # the preload
        (CHAT, "support@v1"),  # 404 from the engine
        ("/v1/load_lora_adapter", "support@v1"),
        (CHAT, "support@v1"),
    ]


async def test_unknown_and_foreign_modes_are_the_same_404(
    settings, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(settings) as client:
        acme = await create_tenant(client, "acme")
        globex = await create_tenant(client, "globex")
        await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a"), "support")
        await set_mode(client, "acme", "support", "support@v1")
        await set_mode(client, "globex", "chat", "base")
        calls_before = fake.calls()

        async def error_for(model: str, key: str | None) -> dict:
            headers = bearer(key) if key else {}
            answer = await client.post(
                CHAT, json={"model": model, "messages": HELLO}, headers=headers
            )
            error = assert_envelope(answer, 404, type="invalid_request_error", param="model")
            assert error["code"] == "model_not_found"
            return error

        unknown = await error_for("no-such-mode", acme)
        assert unknown["message"] == "The model `no-such-mode` does not exist."
        for model, key in (
            ("support", globex),
            ("support@v1", globex),
            ("chat", acme),
            ("support", None),
            ("Not A Valid Name!", acme),
        ):
            error = await error_for(model, key)
            assert error["message"] == unknown["message"].replace("no-such-mode", model)
        wrong_key = await client.post(
            CHAT, json={"model": BASE_NAME, "messages": HELLO}, headers=bearer("lrg-not-a-key")
        )
    assert_envelope(wrong_key, 401, type="authentication_error")
    assert fake.calls() == calls_before  # none of them reached the engine


# --- loaded adapters: LRU cap and refcounts -------------------------------------------
async def three_modes(client: httpx.AsyncClient, base_dir: Path, root: Path) -> str:
    """Tenant acme with modes alpha, beta, gamma -> adapters of those names (v1, not
    preloaded); acme's API key."""
    key = await create_tenant(client, "acme")
    for seed, name in enumerate(NAMES):
        await import_adapter(client, tiny_adapter(base_dir, root / name, seed), name)
        await set_mode(client, "acme", name, f"{name}@v1", preload=False)
    return key


def chat_with(key: str):
    async def chat(client: httpx.AsyncClient, mode: str, **extra: object) -> httpx.Response:
        body = {"model": mode, "messages": HELLO, **extra}
        answer = await client.post(CHAT, json=body, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(
            "text/event-stream" if extra.get("stream") else "application/json"
        )
        return answer

    return chat


async def engine_state(client: httpx.AsyncClient, fake: FakeVLLM) -> list[str]:
    return (await admin(client, "GET", "/admin/engine"))["loaded"][fake.url]


async def test_least_recently_used_adapter_is_unloaded(
    capped, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(capped) as client:
        chat = chat_with(await three_modes(client, base_model_dir, tmp_path))
        await chat(client, "alpha")
        await chat(client, "beta")
        assert fake.unloaded() == []
        await chat(client, "gamma")  # a third one: alpha, the oldest, goes
        assert fake.unloaded() == ["alpha@v1"]
        assert sorted(fake.adapters) == ["beta@v1", "gamma@v1"]
        await chat(client, "beta")  # beta is now more recent than gamma
        await chat(client, "alpha")
        assert fake.unloaded() == ["alpha@v1", "gamma@v1"]
        assert sorted(fake.adapters) == ["alpha@v1", "beta@v1"]
        assert await engine_state(client, fake) == ["beta@v1", "alpha@v1"]
        # an unloaded adapter is loaded again on its next use, and answers
        answer = await chat(client, "gamma")
    assert fake.loaded() == ["alpha@v1", "beta@v1", "gamma@v1", "alpha@v1", "gamma@v1"]
    assert fake.unloaded() == ["alpha@v1", "gamma@v1", "beta@v1"]
    content = answer.json()["choices"][0]["message"]["content"]
    assert content == expected_chat("gamma@v1")


async def wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_adapter_of_a_running_stream_is_never_unloaded(
    capped, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    hold = threading.Event()
    fake.faults = Faults(hold=hold, only_model="alpha@v1")
    async with gateway_client(capped) as client:
        chat = chat_with(await three_modes(client, base_model_dir, tmp_path))
        stream = asyncio.create_task(chat(client, "alpha", stream=True))
        try:
            await wait_until(lambda: fake.running == 1)  # alpha's stream is in the engine
            await chat(client, "beta")
            await chat(client, "gamma")  # over the cap: alpha is oldest but in use
            assert fake.unloaded() == ["beta@v1"]
            await chat(client, "beta")
            assert fake.unloaded() == ["beta@v1", "gamma@v1"]
            assert "alpha@v1" in fake.adapters
            assert not stream.done()
        finally:
            hold.set()
        answer = await stream
        events = sse_data(answer.text)
        assert events[-1] == "[DONE]"
        text = "".join(
            json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1]
        )
        assert text == expected_chat("alpha@v1")
        assert fake.unloaded() == ["beta@v1", "gamma@v1"]  # finishing unloads nothing itself
        await chat(client, "gamma")  # now alpha, released, is the one that goes
    assert fake.unloaded() == ["beta@v1", "gamma@v1", "alpha@v1"]
    assert sorted(fake.adapters) == ["beta@v1", "gamma@v1"]


async def test_concurrent_first_requests_load_an_adapter_once(
    capped, fake: FakeVLLM, base_model_dir: Path, tmp_path: Path
) -> None:
    async with gateway_client(capped) as client:
        chat = chat_with(await three_modes(client, base_model_dir, tmp_path))
        answers = await asyncio.gather(*(chat(client, "alpha") for _ in range(6)))
    assert [path for path, _ in fake.calls()] == ["/v1/load_lora_adapter"] + [CHAT] * 6
    assert {name for _, name in fake.calls()} == {"alpha@v1"}
    assert [a.json()["model"] for a in answers] == ["alpha"] * 6


# --- the fake itself -------------------------------------------------------------------------
async def test_fake_speaks_vllms_adapter_and_error_shapes(fake: FakeVLLM, tmp_path: Path) -> None:
    """What the tests above rely on: the fake keeps vLLM's contract."""
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    load = {"lora_name": "x@v1", "lora_path": str(folder)}
    async with httpx.AsyncClient(base_url=fake.url, headers=bearer(VLLM_KEY)) as client:
        assert (await client.post("/v1/load_lora_adapter", json=load)).status_code == 200
        again = await client.post("/v1/load_lora_adapter", json=load)
        nowhere = {"lora_name": "y@v1", "lora_path": str(tmp_path / "nowhere")}
        missing = await client.post("/v1/load_lora_adapter", json=nowhere)
        models = (await client.get("/v1/models")).json()
        unknown = await client.post(CHAT, json={"model": "y@v1", "messages": HELLO})
        assert (await client.post("/v1/unload_lora_adapter", json=load)).status_code == 200
        gone = await client.post("/v1/unload_lora_adapter", json=load)
    assert [m["id"] for m in models["data"]] == [BASE_NAME, "x@v1"]
    assert again.status_code == 400 and "already" in again.json()["error"]["message"]
    assert missing.status_code == 404
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {
            "message": f"The model `y@v1` does not exist. Valid aliases: {BASE_NAME}.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }
    assert gone.status_code == 404 and fake.adapters == {}


async def test_responses_pass_through_statelessly(settings, fake: FakeVLLM) -> None:
    async with gateway_client(settings) as client:
        base = {"model": BASE_NAME, "input": "Hi", "lorag": {"retrieval": {"top_k": 1}}}
        answer = await client.post("/v1/responses", json=base)
        stored = await client.post("/v1/responses", json={**base, "previous_response_id": "r1"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == BASE_NAME
    [sent] = fake.bodies("/v1/responses")
    assert sent["store"] is False and "lorag" not in sent and sent["cache_salt"]
    assert stored.status_code == 400 and stored.json()["error"]["param"] == "previous_response_id"
