"""Two `lorag serve` processes on one PostgreSQL registry, both sending to the session's real
vLLM (remote engine), their adapter stores one shared folder: a promotion made through one is
served by the other on its next request (the delay is printed: that request's own time, A
having loaded the version into the engine). The in-process version, with a fake engine
each: test_gateway_fast_shared_registry.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY, BASE_NAME, REPO, Gateway, free_port
from tests.postgres import PostgresServer
from tests.service.fake_vllm import KNOWLEDGE_OFF, tiny_adapter

ADAPTER = "fleet-support"  # a name no other test loads into the session's vLLM
VISIBLE_WITHIN_S = 1.0


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("lorag serve exited:\n" + log.read_text(errors="replace"))
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("lorag serve not ready:\n" + log.read_text(errors="replace"))


@pytest.fixture
def fleet(gw: Gateway, postgres: PostgresServer, tmp_path: Path) -> Iterator[list[str]]:
    """The URLs of two `lorag serve` gateways on one new registry and one adapter store."""
    database = postgres.new_registry_url()
    store = tmp_path / "shared-adapters"
    store.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for name in ("a", "b"):
            data_dir = tmp_path / name
            data_dir.mkdir()
            (data_dir / "adapters").symlink_to(store, target_is_directory=True)
            port = free_port()
            env = {
                **os.environ,
                "HF_HUB_OFFLINE": "1",
                "LORAG_DATA_DIR": str(data_dir),
                "LORAG_BASE_MODEL": gw.env["LORAG_BASE_MODEL"],
                "LORAG_MODEL_NAME": BASE_NAME,
                "LORAG_ADMIN_KEY": ADMIN_KEY,
                "LORAG_ENGINE": "remote",
                "LORAG_VLLM_URLS": gw.vllm_url(),
                "LORAG_VLLM_API_KEY": gw.vllm_api_key,
                "LORAG_REGISTRY_URL": database,
                "LORAG_PORT": str(port),
                # the knowledge base fails to open at once: no embedding model loaded
                "LORAG_QDRANT_COLLECTION": KNOWLEDGE_OFF["qdrant_collection"],
            }
            log = (data_dir / "gateway.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cli", "serve"],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
            urls.append(f"http://127.0.0.1:{port}")
        for url, process, name in zip(urls, processes, ("a", "b"), strict=True):
            _wait_ready(url, process, tmp_path / name / "gateway.log")
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        postgres.drop(database)
        for version in (1, 2):  # the session's vLLM as the other tests found it
            httpx.post(
                f"{gw.vllm_url()}/v1/unload_lora_adapter",
                json={"lora_name": f"{ADAPTER}@v{version}"},
                headers=gw.vllm_headers(),
                timeout=60,
            )


def _admin(url: str, method: str, path: str, **kwargs: object) -> dict[str, object]:
    answer = httpx.request(
        method, f"{url}{path}", headers={"x-admin-key": ADMIN_KEY}, timeout=120, **kwargs
    )
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def _ask(url: str, key: str) -> httpx.Response:
    body = {"model": "support", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    headers = {"authorization": f"Bearer {key}"}
    answer = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer


def test_two_lorag_serve_processes_share_one_registry(
    fleet: list[str], base_model_dir: Path, tmp_path: Path
) -> None:
    a, b = fleet
    key = str(_admin(a, "POST", "/admin/tenants", json={"id": "fleet"})["api_key"])
    for seed in (1, 2):
        folder = tiny_adapter(base_model_dir, tmp_path / f"v{seed}", seed=seed)
        body = {"path": str(folder), "name": ADAPTER, "owner": "fleet"}
        assert _admin(a, "POST", "/admin/adapters", json=body)["version"] == seed
    promote = {"target": f"{ADAPTER}@v1", "force": True}
    _admin(a, "PUT", "/admin/tenants/fleet/modes/support", json=promote)
    assert _ask(b, key).headers["x-lorag-adapter"] == f"{ADAPTER}@v1"

    _admin(
        a, "PUT", "/admin/tenants/fleet/modes/support", json={**promote, "target": f"{ADAPTER}@v2"}
    )
    promoted = time.perf_counter()
    served = _ask(b, key).headers["x-lorag-adapter"]
    delay_s = time.perf_counter() - promoted
    print(f"promotion through gateway A served by gateway B after {delay_s * 1000:.0f} ms")
    assert served == f"{ADAPTER}@v2"  # B's very next request: nothing stale in between
    assert delay_s < VISIBLE_WITHIN_S  # that request's own time (one token on the CPU engine)
