"""The remote engine: vLLM servers run elsewhere (`LORAG_VLLM_URLS`); lorag starts nothing and
stops nothing.

Requests go to the servers that are up (which one: `service.replica_choice`). A server is
taken out of rotation at once when a request cannot reach it (`report_unreachable`:
connection refused or lost), or after `probe_failures` failed `/health` probes in a row. Every
server is probed in the background every `probe_interval_s`; one that was down is used again
as soon as it answers (and `generation` changes: it may have restarted and lost its adapters).

Every request to them, probes included, carries `api_key` (`LORAG_VLLM_API_KEY`, the key the
servers were started with: `--api-key` or `VLLM_API_KEY`) as a bearer token when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from service.engine.base import Engine, probe_health
from service.errors import EngineUnavailable

__all__ = ["RemoteEngine"]

log = logging.getLogger(__name__)


@dataclass
class _Server:
    url: str
    up: bool = True  # until a request or a probe says otherwise
    failures: int = 0  # consecutive failed probes


class RemoteEngine(Engine):
    def __init__(
        self,
        urls: list[str],
        *,
        api_key: str | None = None,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 5.0,
        probe_failures: int = 3,
    ):
        if not urls:
            raise EngineUnavailable("no vLLM URLs configured (LORAG_VLLM_URLS)")
        self._servers = {url.rstrip("/"): _Server(url.rstrip("/")) for url in urls}
        self.api_key = api_key
        self._probe_interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._probe_failures = max(1, probe_failures)
        self._generation = 0
        self._prober: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._prober is None:
            self._prober = asyncio.create_task(self._probe_forever(), name="vllm-prober")

    async def stop(self) -> None:
        prober, self._prober = self._prober, None
        if prober is not None:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    def serving_urls(self) -> list[str]:
        up = self.urls
        if not up:
            raise EngineUnavailable("no model engine server is answering; retry shortly")
        return up

    def report_unreachable(self, url: str) -> None:
        server = self._servers.get(url)
        if server is not None and server.up:
            server.up = False
            server.failures = self._probe_failures
            log.warning("vLLM server %s is unreachable: out of rotation until it answers", url)

    def label(self, url: str) -> str:
        """Its place in `LORAG_VLLM_URLS`: "vLLM server 2 of 3 (LORAG_VLLM_URLS)"."""
        configured = list(self._servers)
        if url not in configured:
            return "a vLLM server"
        return f"vLLM server {configured.index(url) + 1} of {len(configured)} (LORAG_VLLM_URLS)"

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self._servers.values() if server.up]

    @property
    def generation(self) -> int:
        return self._generation

    def describe(self) -> dict[str, object]:
        return {
            "kind": "remote",
            "urls": list(self._servers),
            "down": [server.url for server in self._servers.values() if not server.up],
            "generation": self._generation,
        }

    async def probe_once(self) -> None:
        """Probe every server's `/health` (concurrently) and update which are up."""
        servers = list(self._servers.values())
        answers = await asyncio.gather(
            *(
                asyncio.to_thread(probe_health, s.url, self._probe_timeout_s, self.api_key)
                for s in servers
            )
        )
        for server, healthy in zip(servers, answers, strict=True):
            if healthy:
                server.failures = 0
                if not server.up:
                    server.up = True
                    self._generation += 1  # it may have restarted: adapters load again
                    log.info("vLLM server %s answers again: back in rotation", server.url)
                continue
            server.failures += 1
            if server.up and server.failures >= self._probe_failures:
                server.up = False
                log.warning(
                    "vLLM server %s failed %d health probes: out of rotation",
                    server.url,
                    server.failures,
                )

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval_s)
            try:
                await self.probe_once()
            except Exception:  # a probe must never end the loop
                log.exception("probing the vLLM servers failed")
