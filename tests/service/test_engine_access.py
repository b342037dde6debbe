"""The real embedded vLLM (the session gateway, `lorag serve`) accepts only the gateway, and
tenants never share its prefix cache.

- Without the gateway's key, vLLM answers 401 on `/v1/...` (its own check) and on the routes that
  check leaves open (SageMaker's `/adapters` and `/invocations`, `/metrics`: lorag's guard);
  `/health` stays open for the liveness probe. The key is in vLLM's environment, never on its
  command line, and never under its `LORAG_` name.
- Every request the gateway sends carries the caller's `cache_salt`: vLLM takes it, one
  tenant's second request reuses its cached prefix, another tenant's identical request does not.

`test_gateway_fast_isolation.py` checks the same logic against the fake vLLM in seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Gateway, child_pids
from tests.service.fake_vllm import tiny_adapter

WRONG = {"authorization": "Bearer not-the-key"}
NOTES = " ".join(
    f"Note {n}: the lighthouse on rock {n} is painted red and white and its lamp turns every "
    f"{n % 9 + 2} seconds."
    for n in range(24)
)  # ~600 tokens: several full cache blocks (vLLM's CPU blocks hold 128)


@dataclass
class Tenants:
    a: str
    b: str


@pytest.fixture(scope="module")
def tenants(gateway: Gateway) -> Tenants:
    gateway.wait_ready()
    keys = []
    for tenant in ("salt-a", "salt-b"):
        created = gateway.admin("POST", "/admin/tenants", json={"id": tenant})
        assert created.status_code == 201, created.text
        keys.append(created.json()["api_key"])
    return Tenants(*keys)


# --- only the gateway ------------------------------------------------------------------------
def test_the_engine_refuses_every_caller_without_the_gateways_key(
    gw: Gateway, base_model_dir: Path, tmp_path: Path
) -> None:
    vllm = gw.vllm_url()
    folder = tiny_adapter(base_model_dir, tmp_path / "probe")
    load = {"lora_name": "guard-probe@v1", "lora_path": str(folder)}
    refused = []
    for headers in ({}, WRONG):
        refused += [
            httpx.get(f"{vllm}/v1/models", headers=headers),
            httpx.post(f"{vllm}/v1/load_lora_adapter", json=load, headers=headers),
            httpx.post(f"{vllm}/v1/unload_lora_adapter", json=load, headers=headers),
            httpx.post(
                f"{vllm}/v1/completions",
                json={"model": gw.base_name, "prompt": "Hi", "max_tokens": 1},
                headers=headers,
            ),
            # open in vLLM's own check (only /v1, /v2, /inference, /cohere): lorag's guard
            httpx.post(f"{vllm}/adapters", json={"name": "x", "src": str(folder)}, headers=headers),
            httpx.delete(f"{vllm}/adapters/x", headers=headers),
            httpx.post(
                f"{vllm}/invocations",
                json={"model": gw.base_name, "prompt": "Hi", "max_tokens": 1},
                headers=headers,
            ),
            httpx.get(f"{vllm}/metrics", headers=headers),
            httpx.post(f"{vllm}/tokenize", json={"prompt": "Hi"}, headers=headers),
        ]
    assert [(a.request.url.path, a.status_code) for a in refused if a.status_code != 401] == []
    assert httpx.get(f"{vllm}/health").status_code == 200  # the liveness probe needs no key

    key = gw.vllm_headers()
    loaded = httpx.post(f"{vllm}/v1/load_lora_adapter", json=load, headers=key, timeout=60)
    assert loaded.status_code == 200, loaded.text
    models = httpx.get(f"{vllm}/v1/models", headers=key).json()["data"]
    assert "guard-probe@v1" in {m["id"] for m in models}
    unloaded = httpx.post(f"{vllm}/v1/unload_lora_adapter", json=load, headers=key, timeout=60)
    assert unloaded.status_code == 200, unloaded.text
    assert httpx.get(f"{vllm}/metrics", headers=key).status_code == 200


def test_the_key_is_in_the_engines_environment_never_its_command_line(gw: Gateway) -> None:
    pid = gw.engine_pid()
    key = gw.vllm_api_key.encode()
    for each in {pid, gw.process.pid} | child_pids(gw.process.pid):
        try:
            assert key not in Path(f"/proc/{each}/cmdline").read_bytes(), each
        except FileNotFoundError:
            continue  # a short-lived helper that ended meanwhile
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"VLLM_API_KEY=" + key in environ
    assert not [v for v in environ if v.startswith((b"LORAG_VLLM_API_KEY=", b"LORAG_ADMIN_KEY="))]


# --- prefix-cache salts ----------------------------------------------------------------------
def prefix_cache(gw: Gateway) -> tuple[float, float]:
    """vLLM's counters (queried tokens, tokens found in the prefix cache)."""
    found = {"vllm:prefix_cache_queries_total": 0.0, "vllm:prefix_cache_hits_total": 0.0}
    text = httpx.get(f"{gw.vllm_url()}/metrics", headers=gw.vllm_headers()).text
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:
            found[name] += float(line.rsplit(" ", 1)[1])
    return found["vllm:prefix_cache_queries_total"], found["vllm:prefix_cache_hits_total"]


def cached_tokens(gw: Gateway, key: str | None, system: str, question: str) -> float:
    """Ask through the gateway; how many of the prompt's tokens vLLM found in its cache."""
    queries, hits = prefix_cache(gw)
    body = {
        "model": gw.base_name,
        "messages": [
            {"role": "system", "content": system},  # what another tenant would like to probe
            {"role": "user", "content": question},
        ],
        "max_tokens": 1,
        "temperature": 0,
        "cache_salt": "salt-b",  # a client's own salt: replaced by its tenant's
    }
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while (after := prefix_cache(gw))[0] <= queries:  # counters follow the answer closely
        assert time.monotonic() < deadline, "vLLM's prefix cache counters did not move"
        time.sleep(0.1)
    return after[1] - hits


def test_a_tenants_cached_prefix_serves_that_tenant_only(gw: Gateway, tenants: Tenants) -> None:
    system = f"Run {time.time_ns()}. {NOTES}"  # no earlier request of the session began so
    first = cached_tokens(gw, tenants.a, system, "Which rock has the slowest lamp?")
    again = cached_tokens(gw, tenants.a, system, "Which rock has the fastest lamp?")
    other = cached_tokens(gw, tenants.b, system, "Which rock has the fastest lamp?")
    anonymous = cached_tokens(gw, None, system, "Which rock has the fastest lamp?")
    assert first == 0
    assert again >= 384  # the same tenant: its notes came from the cache
    assert other == 0 and anonymous == 0  # the same tokens, another salt: nothing reused


def test_vllm_takes_the_salt_on_every_kind_of_request(gw: Gateway, tenants: Tenants) -> None:
    """A client's `cache_salt` that vLLM would refuse (`@`, `/`) is replaced, so it passes."""
    headers = {"authorization": f"Bearer {tenants.a}"}
    bad_salt = {"cache_salt": "../../other@tenant", "max_tokens": 2, "temperature": 0}
    chat = {"model": gw.base_name, "messages": [{"role": "user", "content": "Hi"}], **bad_salt}
    text = {"model": gw.base_name, "prompt": "Hi", **bad_salt}
    answers = [
        httpx.post(f"{gw.url}/v1/chat/completions", json=chat, headers=headers, timeout=60),
        httpx.post(f"{gw.url}/v1/completions", json=text, headers=headers, timeout=60),
        httpx.post(f"{gw.url}/v1/chat/completions", json={**chat, "stream": True}, timeout=60),
    ]
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    assert answers[2].text.rstrip().endswith("data: [DONE]")
