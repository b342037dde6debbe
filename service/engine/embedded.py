"""The embedded engine: vLLM's OpenAI server as a supervised child process.

It listens on 127.0.0.1 on a free port, with runtime LoRA loading enabled. `start` waits for
`/health`; a child that dies is restarted with backoff; `stop` ends the whole process group.
While it runs, `/health` is probed every `probe_interval_s`: a child that exists but no longer
answers (hung, or stopped with SIGSTOP) is marked down after `probe_failures` failed probes
(callers get 503 at once instead of waiting on it), its process group is killed with SIGKILL
(which also ends a stopped process) and it is restarted. The child asks the kernel to kill it
when the gateway dies (PR_SET_PDEATHSIG), so a killed gateway leaves no orphan vLLM behind.

It accepts only the gateway: it gets a key (`LORAG_VLLM_API_KEY`, or a fresh random one per
engine) in its environment as `VLLM_API_KEY`, never on its command line (every local user can
read that in `ps`), and `service.engine.vllm_guard` makes every route but `/health` need it
(vLLM's own check leaves `/adapters`, `/invocations`, `/metrics` and more open).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lorag.hardware import Precision
from service.engine.base import Engine, bearer_headers, probe_health
from service.engine.tool_parser import ToolParserChoice
from service.errors import EngineUnavailable

__all__ = [
    "GUARD_MIDDLEWARE",
    "EmbeddedEngine",
    "EmbeddedEngineConfig",
    "free_port",
    "quiet_cpu_environment",
    "tail_lines",
]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def quiet_cpu_environment(cores: int | None) -> dict[str, str]:
    """The environment that keeps vLLM's CPU build quiet when idle and fast under contention.

    vLLM's CPU build runs its model worker in a separate process that busy-waits (sched_yield)
    on a shared-memory queue for a second after every step it reads: a full core burnt after
    each request, and taken from whatever else runs. With V1 multiprocessing off, the engine
    core and the worker share one process, with no queue to spin on. That process must then
    use as many OpenMP threads as the worker would have (all cores but one, which vLLM keeps
    for the server): unbound threads over the core count collapse under contention.
    Measured on an AVX2 EPYC, 2 cores, a CPU hog beside it (bench/engine.py,
    docs/benchmarks.md): idle CPU after a request 17% -> 2%, one stream 6.3 -> 8.5 tok/s,
    4 streams 18.0 -> 18.1 tok/s; without the thread limit 1.5 and 2.0 tok/s.
    """
    threads = max(1, (cores or 1) - 1)
    return {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": str(threads)}


_LOG_TAIL_LINES = 40
GUARD_MIDDLEWARE = "service.engine.vllm_guard.GatewayOnly"
COMPACT_JSON_CONFIG = '{"backend": "xgrammar", "disable_any_whitespace": true}'


@dataclass(frozen=True)
class EmbeddedEngineConfig:
    model: str
    served_name: str
    log_path: Path
    dtype: str = "float32"
    max_model_len: int = 2048
    max_lora_rank: int = 16
    max_loras: int = 4
    max_cpu_loras: int = 8
    kv_cache_gib: int = 1
    start_timeout_s: float = 300.0
    tool_parser: str | None = None
    """vLLM's --tool-call-parser (automatic tool choice on); None: off."""
    tool_strict_level: str = "parameter"
    """vLLM's --tool-strict-level: `parameter` = call arguments always follow the tool's schema."""
    compact_json: bool = True
    """Guided JSON without free whitespace (vLLM's xgrammar backend)."""
    extra_args: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    probe_interval_s: float = 5.0
    probe_timeout_s: float = 5.0
    probe_failures: int = 3
    api_key: str | None = field(default=None, repr=False)
    """The key vLLM accepts; None: a fresh random one for each `EmbeddedEngine`."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the gateway process dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail_lines(path: Path, count: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("r", errors="replace") as handle:
            return "".join(deque(handle, maxlen=count))
    except OSError:
        return ""


class EmbeddedEngine(Engine):
    api_key: str  # always set: the operator's, or one made up for this engine

    def __init__(
        self,
        config: EmbeddedEngineConfig,
        *,
        backoff_max_s: float = 30.0,
        precision: Precision | None = None,
        tool_parser: ToolParserChoice | None = None,
    ):
        self.config = config
        self.precision = precision or Precision(config.dtype, config.dtype, "asked for")
        self.tool_parser = tool_parser or ToolParserChoice(config.tool_parser, "asked for")
        self.api_key = config.api_key or secrets.token_urlsafe(32)
        self._backoff_max_s = backoff_max_s
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self._up = False
        self._stopping = False
        self._generation = 0
        self._restarts = 0
        self._supervisor: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    # --- Engine -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start supervising: the first launch and every restart run in the background."""
        self._stopping = False
        self._supervisor = asyncio.create_task(self._supervise(), name="vllm-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        self._up = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await asyncio.to_thread(self._terminate)

    def serving_urls(self) -> list[str]:
        if not self._up or self._url is None:
            raise EngineUnavailable("the model engine is starting or restarting; retry shortly")
        return [self._url]

    @property
    def urls(self) -> list[str]:
        return [self._url] if self._up and self._url else []

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def describe(self) -> dict[str, object]:
        return {
            "kind": "embedded",
            "up": self._up,
            "pid": self.pid,
            "restarts": self._restarts,
            "generation": self._generation,
            "last_error": self.last_error,
            "tool_parser": self.tool_parser.describe(),
        }

    # --- process management -------------------------------------------------------------
    def _command(self, port: int) -> list[str]:
        cfg = self.config
        return [
            cfg.python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            cfg.model,
            "--served-model-name",
            cfg.served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            cfg.dtype,
            "--max-model-len",
            str(cfg.max_model_len),
            "--enable-lora",
            "--max-lora-rank",
            str(cfg.max_lora_rank),
            "--max-loras",
            str(cfg.max_loras),
            "--max-cpu-loras",
            str(cfg.max_cpu_loras),
            *(
                ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_parser]
                if cfg.tool_parser
                else []
            ),
            "--tool-strict-level",
            cfg.tool_strict_level,
            *(["--structured-outputs-config", COMPACT_JSON_CONFIG] if cfg.compact_json else []),
            "--disable-uvicorn-access-log",
            "--middleware",
            GUARD_MIDDLEWARE,
            *cfg.extra_args,
        ]

    def _environment(self) -> dict[str, str]:
        return {
            **self.config.environment,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": str(self.config.kv_cache_gib),
            "HF_HUB_OFFLINE": self.config.environment.get("HF_HUB_OFFLINE", "1"),
            "VLLM_API_KEY": self.api_key,  # not on the command line: `ps` shows that to all
        }

    async def _launch_and_wait(self) -> None:
        port = free_port()
        self.config.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.config.log_path.open("ab")
        log.info("starting vLLM on 127.0.0.1:%d (log: %s)", port, self.config.log_path)
        try:
            self._process = subprocess.Popen(
                self._command(port),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log_file.close()
        url = f"http://127.0.0.1:{port}"
        await self._wait_healthy(url)
        self._url = url
        self._generation += 1
        self._up = True
        log.info("vLLM ready at %s (pid %d)", url, self._process.pid)

    async def _wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        headers = bearer_headers(self.api_key)
        async with httpx.AsyncClient(timeout=2.0, headers=headers) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    code = self._process.returncode if self._process else None
                    raise EngineUnavailable(
                        f"vLLM exited during start (code {code}); last log lines:\n"
                        + tail_lines(self.config.log_path)
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise EngineUnavailable(
            f"vLLM did not become healthy within {self.config.start_timeout_s:.0f} s; "
            "last log lines:\n" + tail_lines(self.config.log_path)
        )

    async def _supervise(self) -> None:
        backoff = 1.0
        failures = 0
        next_probe = time.monotonic() + self.config.probe_interval_s
        while not self._stopping:
            process = self._process
            if process is not None and process.poll() is None:
                if self._up and self._url is not None and time.monotonic() >= next_probe:
                    failures = await self._probe(self._url, failures)
                    next_probe = time.monotonic() + self.config.probe_interval_s
                    if failures >= self.config.probe_failures:
                        await self._kill_hung(failures)
                        failures = 0
                        continue  # the next pass sees it exited and restarts it
                await asyncio.sleep(min(0.5, self.config.probe_interval_s))
                continue
            if process is not None:
                self._up = False
                self._restarts += 1
                log.error(
                    "vLLM exited with code %s; restarting. Last log lines:\n%s",
                    process.returncode,
                    tail_lines(self.config.log_path, 10),
                )
                # what it started (engine core) is of no use without it, and may take its
                # time over SIGTERM (10 s measured): SIGKILL, the restart is that much sooner
                await asyncio.to_thread(self._kill)
                self._process = None
            try:
                await self._launch_and_wait()
                self.last_error = None
                backoff = 1.0
                failures = 0
                next_probe = time.monotonic() + self.config.probe_interval_s
            except EngineUnavailable as exc:
                self.last_error = exc.message
                log.error("vLLM start failed (retrying in %.0f s): %s", backoff, exc.message)
                await asyncio.to_thread(self._terminate)
                self._process = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)

    async def _probe(self, url: str, failures: int) -> int:
        """Probe `/health` once; the count of consecutive failures after it."""
        timeout = self.config.probe_timeout_s
        if await asyncio.to_thread(probe_health, url, timeout, self.api_key):
            if failures:
                log.info("vLLM answers /health again after %d failed probe(s)", failures)
            return 0
        failures += 1
        log.warning(
            "vLLM did not answer /health within %.1f s (%d of %d failed probes)",
            timeout,
            failures,
            self.config.probe_failures,
        )
        return failures

    async def _kill_hung(self, failures: int) -> None:
        """Mark the engine down at once (callers get 503, not a hang), then kill it."""
        self._up = False
        pid = self.pid
        self.last_error = f"vLLM stopped answering /health ({failures} probes failed); restarting"
        log.error("vLLM (pid %s) is hung: %d health probes failed; killing it", pid, failures)
        await asyncio.to_thread(self._kill)

    def _kill(self) -> None:
        """SIGKILL the whole process group (a stopped or hung process ignores SIGTERM)."""
        process = self._process
        if process is None:
            return
        pgid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        _wait_group_gone(pgid, timeout_s=10)

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        # The child leads its own process group (start_new_session): its group id is its pid,
        # also after it died and was reaped, when vLLM's engine-core and worker processes it
        # started may still be running.
        pgid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            process.wait(timeout=5)
        _wait_group_gone(pgid, timeout_s=10)
        with contextlib.suppress(ProcessLookupError):  # what outlived its parent
            os.killpg(pgid, signal.SIGKILL)


def _wait_group_gone(pgid: int, timeout_s: float) -> None:
    """Wait (at most `timeout_s`) until no process of the group is left."""
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
