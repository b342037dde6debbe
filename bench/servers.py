"""Processes the benchmarks measure: a bare vLLM server and a lorag gateway in front of it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lorag.base_model import prepare_bundled_model  # noqa: E402
from lorag.settings import BUNDLED_MODEL_NAME, Settings  # noqa: E402
from service.engine import resolve_engine_dtype  # noqa: E402
from service.engine.embedded import quiet_cpu_environment  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def start_vllm(
    extra_env: dict[str, str] | None = None, dtype: str = "auto", *, quiet: bool = True
) -> tuple[subprocess.Popen[bytes], str, str]:
    """A vLLM server on the bundled model, as `lorag serve` would start it: the dtype lorag
    picks for this machine ("auto") and the quiet-idle environment (unless `quiet=False`)."""
    model_dir = prepare_bundled_model(Settings(data_dir=REPO / ".lorag"))
    port = free_port()
    dtype = resolve_engine_dtype(dtype).value
    env = {
        **(quiet_cpu_environment(os.cpu_count()) if quiet else {}),
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        **(extra_env or {}),
    }
    log = open(Path(tempfile.gettempdir()) / f"bench-vllm-{port}.log", "wb")  # noqa: SIM115
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    command += ["--model", str(model_dir), "--served-model-name", BUNDLED_MODEL_NAME]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--dtype", dtype, "--max-model-len", "2048", "--enable-lora"]
    command += ["--max-lora-rank", "16", "--max-loras", "8", "--max-cpu-loras", "16"]
    command += ["--disable-uvicorn-access-log"]
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health", process)
    return process, url, BUNDLED_MODEL_NAME


def start_gateway(
    vllm_url: str, model: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A lorag gateway with the remote engine pointing at `vllm_url`."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="lorag-bench-")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LORAG_ENGINE": "remote",
        "LORAG_VLLM_URLS": vllm_url,
        "LORAG_MODEL_NAME": model,
        "LORAG_BASE_MODEL": str(REPO / ".lorag" / "models" / model),
        "LORAG_DATA_DIR": data_dir,
        "LORAG_PORT": str(port),
        "LORAG_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/ready", process)
    return process, url


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(os.getpgid(process.pid), signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(os.getpgid(process.pid), signal.SIGKILL)
