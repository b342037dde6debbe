"""Adapter-aware routing over several vLLM servers: pure logic, then through the gateway
against two fake servers (what each server loaded and answered). The measurement against two
real CPU vLLM servers is bench/routing.py (docs/benchmarks.md)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from service.errors import EngineUnavailable
from service.replica_choice import ReplicaChooser
from tests.service.fake_vllm import (
    ADMIN_KEY,
    bearer,
    create_tenant,
    gateway_client,
    gateway_settings,
    import_adapter,
    running_fake,
    set_mode,
    tiny_adapter,
)

A, B, C = "http://a", "http://b", "http://c"
HI = [{"role": "user", "content": "Hi"}]


def test_a_holder_is_preferred_then_the_least_busy() -> None:
    chooser = ReplicaChooser()
    held = {B}
    assert {chooser.choose([A, B, C], held.__contains__) for _ in range(5)} == {B}
    chooser.started(B)
    chooser.started(B)
    assert chooser.choose([A, B, C], held.__contains__) == B  # 2 busier: still below spill
    for _ in range(2):
        chooser.started(B)
    assert chooser.choose([A, B, C], held.__contains__) in (A, C)  # 4 busier: spills
    # nobody holds it (or the base model): the least busy, ties in turn
    chooser.started(A)
    assert {chooser.choose([A, B, C]) for _ in range(4)} == {C}
    chooser.finished(A)
    assert {chooser.choose([A, B, C], set().__contains__) for _ in range(4)} == {A, C}
    for _ in range(4):
        chooser.finished(B)
    assert chooser.in_flight() == {}
    with pytest.raises(EngineUnavailable):
        chooser.choose([])


def test_round_robin_ignores_what_servers_hold() -> None:
    chooser = ReplicaChooser("round-robin")
    picks = [chooser.choose([A, B], {A}.__contains__) for _ in range(4)]
    assert sorted(picks) == [A, A, B, B]


@pytest.mark.anyio
@pytest.mark.parametrize("routing", ["adapter-aware", "round-robin"])
async def test_each_adapter_stays_on_one_server(
    routing: str, tmp_path: Path, base_model_dir: Path
) -> None:
    """4 adapters, 2 servers that keep 2 loaded each, 40 requests in a seeded random order:
    adapter-aware loads each adapter once; round-robin makes every server load all of them."""
    with running_fake(base_model_dir.name) as first, running_fake(base_model_dir.name) as second:
        urls = [first.url, second.url]
        settings = gateway_settings(
            tmp_path / "data", urls, base_model_dir, routing=routing, max_cpu_loras=2
        )
        async with gateway_client(settings) as client:
            key = await create_tenant(client, "acme")
            for index in range(4):
                folder = tiny_adapter(base_model_dir, tmp_path / f"a{index}", seed=index)
                served = await import_adapter(client, folder, f"a{index}", owner="acme")
                await set_mode(client, "acme", f"m{index}", served, preload=False)
            order = [f"m{i}" for i in random.Random(7).choices(range(4), k=40)]
            for mode in order:
                answer = await client.post(
                    "/v1/chat/completions",
                    json={"model": mode, "messages": [{"role": "user", "content": "Hi"}]},
                    headers=bearer(key),
                )
                assert answer.status_code == 200, answer.text
    loads = len(first.requests("/v1/load_lora_adapter")) + len(
        second.requests("/v1/load_lora_adapter")
    )
    served_by = {
        fake.url: {body["model"] for body in fake.bodies("/v1/chat/completions")}
        for fake in (first, second)
    }
    if routing == "adapter-aware":
        assert loads == 4
        assert served_by[first.url].isdisjoint(served_by[second.url])
    else:
        assert loads > 10  # each server cycles 4 adapters through 2 slots
        assert served_by[first.url] == served_by[second.url]


@pytest.mark.anyio
async def test_ready_while_one_of_two_servers_is_down(
    tmp_path: Path, base_model_dir: Path, fake
) -> None:
    """A load balancer reads `/ready`: one server down (not yet found by the probes) must not
    take the gateway out, since requests go to the other; none answering is 503."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = gateway_settings(tmp_path / "data", [dead, fake.url], base_model_dir)
    async with gateway_client(settings) as client:
        ready = await client.get("/ready", headers={"x-admin-key": ADMIN_KEY})
        answers = [
            await client.post(
                "/v1/chat/completions",
                json={"model": base_model_dir.name, "messages": HI},
            )
            for _ in range(3)
        ]
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["engine"]["urls"] == [dead, fake.url]
    assert [answer.status_code for answer in answers] == [200] * 3
    only_dead = gateway_settings(tmp_path / "dead", [dead], base_model_dir)
    async with gateway_client(only_dead) as client:
        assert (await client.get("/ready")).status_code == 503
