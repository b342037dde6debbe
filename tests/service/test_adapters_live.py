"""Tenants, modes and adapters through the real gateway and the real vLLM engine.

Adapters loaded again after vLLM restarts: `test_faults.py` (killed mid-stream).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from ingest.embedding import BUNDLED_MODEL_NAME
from tests.conftest import Gateway
from tests.factories import make_lora_adapter

PROMPT = "Describe your favourite season in two sentences."


@dataclass
class World:
    v1: Path
    v2: Path
    acme_key: str
    globex_key: str


def chat(gw: Gateway, key: str, model: str, prompt: str = PROMPT, max_tokens: int = 24) -> str:
    reply = gw.openai(api_key=key).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=max_tokens,
    )
    return reply.choices[0].message.content or ""


def direct(gw: Gateway, model: str, prompt: str = PROMPT, max_tokens: int = 24) -> str:
    """The same request sent straight to vLLM (no gateway)."""
    answer = httpx.post(
        f"{gw.vllm_url()}/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max_tokens,
        },
        headers=gw.vllm_headers(),
        timeout=120,
    )
    answer.raise_for_status()
    return answer.json()["choices"][0]["message"]["content"]


def load_direct(gw: Gateway, name: str, path: Path) -> None:
    answer = httpx.post(
        f"{gw.vllm_url()}/v1/load_lora_adapter",
        json={"lora_name": name, "lora_path": str(path)},
        headers=gw.vllm_headers(),
        timeout=60,
    )
    # vLLM refuses a name it already holds; each name here always means the same folder
    already = f"The lora adapter '{name}' has already been loaded".encode()
    assert answer.status_code == 200 or (answer.status_code == 400 and already in answer.content), (
        answer.text
    )


def set_mode(gw: Gateway, tenant: str, mode: str, target: str, **extra: object) -> dict:
    answer = gw.admin(
        "PUT",
        f"/admin/tenants/{tenant}/modes/{mode}",
        json={"target": target, "force": True, **extra},  # the factory's adapters are ungated
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def world(gateway: Gateway, base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    gateway.wait_ready()
    root = tmp_path_factory.mktemp("adapters")
    keys = {}
    for tenant in ("acme", "globex"):
        answer = gateway.admin("POST", "/admin/tenants", json={"id": tenant})
        assert answer.status_code == 201, answer.text
        keys[tenant] = answer.json()["api_key"]
    v1 = make_lora_adapter(base_model_dir, root / "v1", seed=1)
    v2 = make_lora_adapter(base_model_dir, root / "v2", seed=2)
    private = make_lora_adapter(base_model_dir, root / "private", seed=3)
    for path, name, owner in (
        (v1, "support", None),
        (v2, "support", None),
        (private, "acme-secret", "acme"),
    ):
        body = {"path": str(path), "name": name, "owner": owner}
        answer = gateway.admin("POST", "/admin/adapters", json=body)
        assert answer.status_code == 201, answer.text
    set_mode(gateway, "acme", "support", "support@v1", default=True)
    set_mode(gateway, "acme", "plain", "base")
    set_mode(gateway, "acme", "secret", "acme-secret@v1")
    set_mode(gateway, "globex", "chat", "base")
    return World(v1, v2, keys["acme"], keys["globex"])


def test_adapter_mode_changes_answer_and_matches_vllm(gw: Gateway, world: World) -> None:
    base = chat(gw, world.acme_key, "plain")
    adapted = chat(gw, world.acme_key, "support")
    assert adapted != base
    load_direct(gw, "reference-v1", world.v1)
    assert adapted == direct(gw, "reference-v1")
    assert base == direct(gw, gw.base_name)
    # the base model's name means the tenant's default mode
    assert chat(gw, world.acme_key, gw.base_name) == adapted


def test_answer_and_metrics_name_the_adapter_version(gw: Gateway, world: World) -> None:
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={
            "model": "support",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 8,
        },
        headers={"authorization": f"Bearer {world.acme_key}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-lorag-mode"] == "support"
    assert answer.headers["x-lorag-adapter"] == "support@v1"
    metrics = httpx.get(f"{gw.url}/metrics").text
    served = (
        'lorag_served_total{adapter_version="support@v1",mode="support",status="200",tenant="acme"}'
    )
    assert served in metrics


def test_models_lists_only_the_callers_modes(gw: Gateway, world: World) -> None:
    acme = sorted(m.id for m in gw.openai(api_key=world.acme_key).models.list())
    globex = sorted(m.id for m in gw.openai(api_key=world.globex_key).models.list())
    # each tenant's own modes, and the embedding model every caller may use
    assert acme == [BUNDLED_MODEL_NAME, "plain", "secret", "support"]
    assert globex == [BUNDLED_MODEL_NAME, "chat"]


def test_other_tenants_modes_and_adapters_are_invisible(gw: Gateway, world: World) -> None:
    def error_for(model: str) -> dict:
        with pytest.raises(openai.NotFoundError) as caught:
            chat(gw, world.globex_key, model, max_tokens=2)
        return caught.value.body

    unknown = error_for("no-such-mode")
    for probe in ("support", "secret", "support@v1", "acme-secret@v1", "acme/support"):
        error = error_for(probe)
        assert error["message"] == unknown["message"].replace("no-such-mode", probe)
        assert {k: v for k, v in error.items() if k != "message"} == {
            k: v for k, v in unknown.items() if k != "message"
        }
    # an operator cannot bind globex to acme's private adapter either
    answer = gw.admin("PUT", "/admin/tenants/globex/modes/x", json={"target": "acme-secret@v1"})
    assert answer.status_code == 404


def test_unknown_or_rotated_key_is_401(gw: Gateway, world: World) -> None:
    with pytest.raises(openai.AuthenticationError):
        chat(gw, "lrg-not-a-real-key", "support", max_tokens=2)
    created = gw.admin("POST", "/admin/tenants", json={"id": "rotator"}).json()
    set_mode(gw, "rotator", "chat", "base")
    old = created["api_key"]
    assert chat(gw, old, "chat", max_tokens=2)
    new = gw.admin("POST", "/admin/tenants/rotator/rotate-key").json()["api_key"]
    with pytest.raises(openai.AuthenticationError):
        chat(gw, old, "chat", max_tokens=2)
    assert chat(gw, new, "chat", max_tokens=2)


def test_admin_needs_the_admin_key(gw: Gateway) -> None:
    assert httpx.get(f"{gw.url}/admin/tenants").status_code == 401
    wrong = httpx.get(f"{gw.url}/admin/tenants", headers={"x-admin-key": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"


def test_bad_artifacts_are_refused_and_change_nothing(gw: Gateway, tmp_path: Path) -> None:
    before = gw.admin("GET", "/admin/adapters").json()["data"]
    missing = tmp_path / "empty"
    missing.mkdir()
    answer = gw.admin("POST", "/admin/adapters", json={"path": str(missing), "name": "bad"})
    assert answer.status_code == 400
    assert "adapter_config.json" in answer.json()["error"]["message"]
    answer = gw.admin("POST", "/admin/adapters", json={"path": str(missing), "name": "../x"})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "name"
    assert gw.admin("GET", "/admin/adapters").json()["data"] == before


def test_promotion_under_load_then_rollback(gw: Gateway, world: World) -> None:
    set_mode(gw, "acme", "support", "support@v1")
    load_direct(gw, "reference-v1", world.v1)
    load_direct(gw, "reference-v2", world.v2)
    with ThreadPoolExecutor(3) as pool:  # the references, at once (vLLM batches them)
        long_v1, short_v2, short_v1 = pool.map(
            lambda args: direct(gw, args[0], **args[1]),
            [("reference-v1", {"max_tokens": 48}), ("reference-v2", {}), ("reference-v1", {})],
        )
    assert short_v2 != short_v1

    results: list[str] = []
    errors: list[BaseException] = []
    streams = 4
    started = threading.Barrier(streams + 1)

    def stream() -> None:
        try:
            events = gw.openai(api_key=world.acme_key).chat.completions.create(
                model="support",
                messages=[{"role": "user", "content": PROMPT}],
                temperature=0,
                max_tokens=48,  # still generating long after the promotion (~50 ms)
                stream=True,
            )
            parts = []
            for index, event in enumerate(events):
                if index == 1:
                    started.wait(timeout=60)
                if event.choices:
                    parts.append(event.choices[0].delta.content or "")
            results.append("".join(parts))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    for thread in threads:
        thread.start()
    started.wait(timeout=60)  # every stream has its first tokens from v1
    promoted = set_mode(gw, "acme", "support", "support@v2")
    assert promoted["preloaded"] is True
    during = chat(gw, world.acme_key, "support")
    assert during == short_v2, (during, short_v2, short_v1)
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert results == [long_v1] * streams  # running requests finished on v1

    set_mode(gw, "acme", "support", "support@v1")  # rollback
    assert chat(gw, world.acme_key, "support") == short_v1


def test_deleting_a_version_in_use_is_refused(gw: Gateway, world: World) -> None:
    set_mode(gw, "acme", "support", "support@v1")
    answer = gw.admin("DELETE", "/admin/adapters/support/versions/1")
    assert answer.status_code == 409
    assert "acme:support" in answer.json()["error"]["message"]


def test_lru_cap_unloads_the_least_recently_used(gw: Gateway, world: World) -> None:
    asyncio.run(_lru_scenario(gw.vllm_url(), gw.vllm_api_key, gw.base_name, world))


async def _lru_scenario(url: str, key: str, base_name: str, world: World) -> None:
    from datetime import UTC, datetime

    from adapters.models import AdapterVersion
    from service.engine import RemoteEngine
    from service.lora import LoraManager
    from service.upstream import Upstream

    def version(name: str) -> AdapterVersion:
        return AdapterVersion(
            name,
            1,
            base_name,
            8,
            16.0,
            ("q_proj",),
            name,
            0,
            datetime.now(UTC),
            "test",
            {},
            "",
            None,
        )

    async def served() -> set[str]:
        return {m["id"] for m in (await client.get(f"{url}/v1/models")).json()["data"]}

    paths = {"lru-a": world.v1, "lru-b": world.v2}
    upstream = Upstream(60, api_key=key)
    engine = RemoteEngine([url], api_key=key)
    manager = LoraManager(engine, upstream, lambda v: paths[v.name], cap=1)
    try:
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:
            first = await manager.acquire(url, version("lru-a"))
            await manager.acquire(url, version("lru-b"))  # over the cap, but a is in use
            assert {"lru-a@v1", "lru-b@v1"} <= await served()
            manager.release(url, first)
            await manager.ensure_loaded(url, version("lru-b"))
            assert "lru-a@v1" not in await served()
            assert "lru-b@v1" in await served()
            assert manager.loaded(url) == ["lru-b@v1"]
    finally:
        await upstream.close()
