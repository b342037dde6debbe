"""The real embedded vLLM (the session gateway, `lorag serve`) accepts only the gateway.

Without the gateway's key, vLLM answers 401 on `/v1/...` (its own check) and on the routes that
check leaves open (SageMaker's `/adapters` and `/invocations`, `/metrics`: lorag's guard);
`/health` stays open for the liveness probe. The key is in vLLM's environment, never on its
command line, and never under its `LORAG_` name.

`test_gateway_fast_isolation.py` checks the same logic against the fake vLLM in seconds.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Gateway, child_pids
from tests.service.fake_vllm import tiny_adapter

WRONG = {"authorization": "Bearer not-the-key"}


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
