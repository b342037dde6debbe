"""Modes with instructions and release discipline through the gateway: fast, against the fake
vLLM (which records what the gateway sent). The real model answering a prompt-only mode is
in test_retrieval.py's mode report; the registry's own rules in tests/adapters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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
    set_mode,
    tiny_adapter,
)

pytestmark = pytest.mark.anyio
ADMIN = {"x-admin-key": ADMIN_KEY}
RULES = "You are ACME's assistant. Answer in one sentence."


async def test_a_mode_s_instructions_reach_the_engine(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path
) -> None:
    settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        await set_mode(client, "acme", "prompt", "base", system_prompt=RULES)
        await set_mode(client, "acme", "plain", "base")
        user = {"role": "user", "content": "Hi"}
        own = {"role": "system", "content": "Reply in French."}
        for messages in ([user], [own, user]):
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": "prompt", "messages": messages},
                headers=bearer(key),
            )
            assert answer.status_code == 200, answer.text
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": "plain", "messages": [user]},
            headers=bearer(key),
        )
        assert answer.status_code == 200
        responses = await client.post(
            "/v1/responses",
            json={"model": "prompt", "input": "Hi", "instructions": "Be nice."},
            headers=bearer(key),
        )
        assert responses.status_code == 200, responses.text
        legacy = await client.post(
            "/v1/completions", json={"model": "prompt", "prompt": "Hi"}, headers=bearer(key)
        )
        models = (await client.get("/v1/models", headers=bearer(key))).json()["data"]
    sent = [body["messages"] for body in fake.bodies("/v1/chat/completions")]
    assert sent[0] == [{"role": "system", "content": RULES}, user]
    # one system message, the mode's instructions first (templates accept one, at the start)
    assert sent[1] == [{"role": "system", "content": RULES + "\n\nReply in French."}, user]
    assert sent[2] == [user]  # a mode without instructions sends the request as it came
    assert fake.bodies("/v1/responses")[0]["instructions"] == RULES + "\n\nBe nice."
    error = assert_envelope(legacy, 400, type="invalid_request_error", param="model")
    assert "/v1/chat/completions" in error["message"] and not fake.bodies("/v1/completions")
    flags = {card["id"]: (card.get("lorag") or {}).get("instructions") for card in models}
    assert (flags["prompt"], flags["plain"]) == (True, False)


async def test_promotion_history_and_rollback_over_the_api(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path
) -> None:
    settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
    async with gateway_client(settings) as client:
        key = await create_tenant(client, "acme")
        v1 = await import_adapter(client, tiny_adapter(base_model_dir, tmp_path / "a", 1), "sup")
        path = "/admin/tenants/acme/modes/support"
        refused = await client.put(path, json={"target": v1}, headers=ADMIN)
        error = assert_envelope(refused, 409, type="invalid_request_error", param="target")
        assert "sup@v1 never passed a gate" in error["message"]
        forced = await client.put(
            path, json={"target": v1, "force": True, "actor": "alice"}, headers=ADMIN
        )
        assert forced.status_code == 200 and forced.json()["forced"] is True
        await set_mode(client, "acme", "support", "base", actor="bob")
        rolled = await admin(client, "POST", f"{path}/rollback", json={"actor": "carol"})
        assert (rolled["target"], rolled["rolled_back_from"]) == ("sup@v1", "base")
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": "support", "messages": [{"role": "user", "content": "Hi"}]},
            headers=bearer(key),
        )
        assert answer.headers["x-lorag-adapter"] == "sup@v1"
        history = (await admin(client, "GET", f"{path}/history"))["data"]
        everything = (await admin(client, "GET", "/admin/tenants/acme/history"))["data"]
        unknown = await client.post("/admin/tenants/acme/modes/nope/rollback", headers=ADMIN)
        anonymous = await client.get(f"{path}/history", headers=bearer(key))
    assert [(c["action"], c["to_target"], c["actor"], c["forced"]) for c in history] == [
        ("rollback", "sup@v1", "admin-api:carol", False),
        ("repoint", "base", "admin-api:bob", False),
        ("create", "sup@v1", "admin-api:alice", True),
    ]
    assert everything == history
    assert_envelope(unknown, 404, type="invalid_request_error", param="mode")
    assert anonymous.status_code in (401, 403)


async def test_history_answers_while_another_client_promotes(
    tmp_path: Path, fake: FakeVLLM, base_model_dir: Path
) -> None:
    """Promotions from several operators at once each leave their one row."""
    settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
    async with gateway_client(settings) as client:
        await create_tenant(client, "acme")
        calls = [set_mode(client, "acme", f"m{i}", "base", actor=f"op{i}") for i in range(6)]
        await asyncio.gather(*calls)
        history = (await admin(client, "GET", "/admin/tenants/acme/history?limit=4"))["data"]
        assert len(history) == 4
        full = (await admin(client, "GET", "/admin/tenants/acme/history"))["data"]
    assert sorted(c["actor"] for c in full) == [f"admin-api:op{i}" for i in range(6)]
