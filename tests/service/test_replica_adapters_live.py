"""A second, real vLLM server loads adapters through lorag's resolver plugin, with no folder
shared with the gateway.

The test starts a vLLM server from an empty folder of its own, lorag's plugin enabled by its
environment only (`VLLM_PLUGINS`, `LORAG_RESOLVER_*`; its cache is a folder of that server's),
and a `lorag serve` in front of it (remote engine, `LORAG_ADAPTER_DELIVERY=resolver`) with its
own data folder: the server is never told where the gateway's store is. Promoting a version
through that gateway makes the server fetch it (the gateway's `/detokenize` load), and its
greedy float32 answer is the session vLLM's with the same adapter folder loaded directly. A
server that lost the version (an unload behind the gateway's back, as after a restart)
resolves it again by itself, from its cache: nothing is downloaded twice. A version whose
stored files were changed after it was imported is refused by the plugin: its promotion fails
saying why, nothing of it is cached, the live version stays.

One vLLM start (~40-70 s on 2 cores) with the gateway starting beside it. The fast tests of
the endpoint, the cache and the settings: test_replica_adapters.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from service.engine.embedded import quiet_cpu_environment
from service.engine.lora_resolver import PLUGIN_NAME
from tests.conftest import ADMIN_KEY, BASE_NAME, REPO, Gateway, free_port
from tests.factories import make_lora_adapter
from tests.service.fake_vllm import KNOWLEDGE_OFF, tiny_adapter
from tests.service.test_adapters_live import PROMPT, direct, load_direct

REPLICA_KEY = "replica-key-live-0123456789abcdef0123456789"
REPLICA_VLLM_KEY = "replica-vllm-key-0123456789"
REFERENCE = "replica-reference"  # its name in the session's vLLM (no other test loads it)


@dataclass
class Fleet:
    gateway_url: str
    gateway_data: Path
    vllm_url: str
    vllm: subprocess.Popen[bytes]
    replica_dir: Path

    @property
    def cache(self) -> Path:
        return self.replica_dir / "adapter-cache"

    def admin_call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"x-admin-key": ADMIN_KEY}
        url = f"{self.gateway_url}{path}"
        return httpx.request(method, url, headers=headers, timeout=120, **kwargs)

    def admin(self, method: str, path: str, **kwargs: object) -> dict[str, object]:
        answer = self.admin_call(method, path, **kwargs)
        assert answer.status_code in (200, 201), answer.text
        return dict(answer.json())

    def vllm_post(self, path: str, body: dict[str, object]) -> httpx.Response:
        headers = {"authorization": f"Bearer {REPLICA_VLLM_KEY}"}
        return httpx.post(f"{self.vllm_url}{path}", json=body, headers=headers, timeout=120)


def _replica_environment(gateway_url: str, cache: Path) -> dict[str, str]:
    """What an operator sets on a replica: vLLM's runtime LoRA switch, the plugins, and the
    plugin's three variables. None of the test process's LORAG_* settings."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LORAG_")}
    return {
        **quiet_cpu_environment(os.cpu_count()),  # as the session's embedded vLLM runs
        **inherited,
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_API_KEY": REPLICA_VLLM_KEY,
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "true",
        "VLLM_PLUGINS": f"lorag-cpu-lora,{PLUGIN_NAME}",
        "LORAG_RESOLVER_URL": gateway_url,
        "LORAG_RESOLVER_KEY": REPLICA_KEY,
        "LORAG_RESOLVER_CACHE": str(cache),
    }


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n" + log.read_text(errors="replace")[-4000:])
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready:\n" + log.read_text(errors="replace")[-4000:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the process's whole group (it leads one: vLLM's engine processes go with it)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture
def fleet(gw: Gateway, base_model_dir: Path, tmp_path: Path) -> Iterator[Fleet]:
    installed = {plugin.name for plugin in entry_points(group="vllm.general_plugins")}
    assert PLUGIN_NAME in installed, "reinstall lorag (`make install`): vLLM finds no plugin"
    replica_dir = tmp_path / "replica"  # the second server's own, empty folder
    replica_dir.mkdir()
    gateway_data = tmp_path / "gateway"
    gateway_data.mkdir()
    gateway_port, vllm_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    vllm_url = f"http://127.0.0.1:{vllm_port}"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(base_model_dir), "--served-model-name", BASE_NAME]
    command += ["--host", "127.0.0.1", "--port", str(vllm_port), "--dtype", "float32"]
    command += ["--max-model-len", "512", "--enable-lora", "--max-lora-rank", "16"]
    command += ["--max-loras", "2", "--max-cpu-loras", "4", "--disable-uvicorn-access-log"]
    command += ["--middleware", "service.engine.vllm_guard.GatewayOnly"]
    vllm_log = replica_dir / "vllm.log"
    gateway_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LORAG_DATA_DIR": str(gateway_data),
        "LORAG_BASE_MODEL": str(base_model_dir),
        "LORAG_MODEL_NAME": BASE_NAME,
        "LORAG_ADMIN_KEY": ADMIN_KEY,
        "LORAG_ENGINE": "remote",
        "LORAG_VLLM_URLS": vllm_url,
        "LORAG_VLLM_API_KEY": REPLICA_VLLM_KEY,
        "LORAG_ADAPTER_DELIVERY": "resolver",
        "LORAG_REPLICA_KEY": REPLICA_KEY,
        "LORAG_PORT": str(gateway_port),
        "LORAG_VLLM_PROBE_INTERVAL_S": "1",  # the server is back in rotation once it is up
        "LORAG_QDRANT_COLLECTION": KNOWLEDGE_OFF["qdrant_collection"],  # no embedding model
    }
    gateway_log = gateway_data / "gateway.log"
    started = time.perf_counter()
    with vllm_log.open("wb") as log:
        vllm = subprocess.Popen(
            command,
            cwd=replica_dir,
            env=_replica_environment(gateway_url, replica_dir / "adapter-cache"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with gateway_log.open("wb") as log:
        gateway = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve"],
            cwd=REPO,
            env=gateway_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(f"{vllm_url}/health", vllm, vllm_log)
        _wait(f"{gateway_url}/ready", gateway, gateway_log)
        print(f"replica vLLM and its gateway ready in {time.perf_counter() - started:.1f} s")
        yield Fleet(gateway_url, gateway_data, vllm_url, vllm, replica_dir)
    finally:
        _stop(gateway)
        _stop(vllm)
        httpx.post(  # the session's vLLM as the other tests found it
            f"{gw.vllm_url()}/v1/unload_lora_adapter",
            json={"lora_name": REFERENCE},
            headers=gw.vllm_headers(),
            timeout=60,
        )


def _chat(fleet: Fleet, key: str) -> httpx.Response:
    body = {
        "model": "support",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0,
        "max_tokens": 24,
    }
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.post(
        f"{fleet.gateway_url}/v1/chat/completions", json=body, headers=headers, timeout=120
    )
    assert answer.status_code == 200, answer.text
    return answer


def test_a_second_vllm_loads_adapters_through_the_plugin(
    fleet: Fleet, gw: Gateway, base_model_dir: Path, tmp_path: Path
) -> None:
    started = time.perf_counter()
    folder = make_lora_adapter(base_model_dir, tmp_path / "adapter", seed=5)
    key = str(fleet.admin("POST", "/admin/tenants", json={"id": "replica-acme"})["api_key"])
    version = fleet.admin("POST", "/admin/adapters", json={"path": str(folder), "name": "support"})
    promote = {"target": "support@v1", "force": True}
    # the promotion loads it on the server: fetched from the gateway by the plugin
    assert fleet.admin("PUT", "/admin/tenants/replica-acme/modes/support", json=promote)[
        "preloaded"
    ]
    cached = fleet.cache / "sha256" / str(version["sha256"])
    assert sorted(p.name for p in cached.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert not any((fleet.cache / "tmp").iterdir())  # no download left half-way
    listed = httpx.get(
        f"{fleet.vllm_url}/v1/models",
        headers={"authorization": f"Bearer {REPLICA_VLLM_KEY}"},
        timeout=30,
    ).json()["data"]
    assert {m["id"]: m["root"] for m in listed}["support@v1"] == str(cached)
    # nothing of the gateway's folders reached the server
    environment = Path(f"/proc/{fleet.vllm.pid}/environ").read_bytes()
    assert str(fleet.gateway_data).encode() not in environment

    answer = _chat(fleet, key)
    assert answer.headers["x-lorag-adapter"] == "support@v1"
    replica_text = answer.json()["choices"][0]["message"]["content"]
    load_direct(gw, REFERENCE, folder)
    assert replica_text == direct(gw, REFERENCE)  # the session's vLLM, the same adapter
    assert replica_text != direct(gw, gw.base_name)

    # the server loses it behind the gateway's back: it resolves it again, from its cache
    weights = (cached / "adapter_model.safetensors").stat().st_ino
    assert fleet.vllm_post("/v1/unload_lora_adapter", {"lora_name": "support@v1"}).is_success
    again = _chat(fleet, key).json()["choices"][0]["message"]["content"]
    assert again == replica_text
    assert (cached / "adapter_model.safetensors").stat().st_ino == weights  # not downloaded
    log = (fleet.replica_dir / "vllm.log").read_text(errors="replace")
    assert log.count("fetched from the gateway") == 1
    assert log.count("Resolved and loaded LoRA adapter 'support@v1'") == 2

    # a version whose stored files no longer hash to the registry's sha256: the plugin
    # refuses it, the promotion fails saying why, and v1 stays live
    v2 = fleet.admin(
        "POST",
        "/admin/adapters",
        json={
            "path": str(tiny_adapter(base_model_dir, tmp_path / "v2", seed=9)),
            "name": "support",
        },
    )
    stored = fleet.gateway_data / "adapters" / "sha256" / str(v2["sha256"])
    weights_file = stored / "adapter_model.safetensors"
    weights_file.chmod(0o644)
    tampered = bytearray(weights_file.read_bytes())
    tampered[-1] ^= 0xFF
    weights_file.write_bytes(bytes(tampered))
    refused = fleet.admin_call(
        "PUT",
        "/admin/tenants/replica-acme/modes/support",
        json={**promote, "target": "support@v2"},
    )
    assert refused.status_code == 500, refused.text
    message = refused.json()["error"]["message"]
    assert "vLLM server 1 of 1 (LORAG_VLLM_URLS) could not load adapter support@v2" in message
    assert "the registry says" in message and "nothing cached" in message
    assert not (fleet.cache / "sha256" / str(v2["sha256"])).exists()
    assert not any((fleet.cache / "tmp").iterdir())
    assert _chat(fleet, key).headers["x-lorag-adapter"] == "support@v1"
    print(f"adapter fetched, served and resolved again in {time.perf_counter() - started:.1f} s")
