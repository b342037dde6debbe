"""The `Engine` interface: where the vLLM OpenAI servers are, and whether they answer."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import httpx

from lorag.hardware import Precision

__all__ = ["Engine", "bearer_headers", "probe_health"]

log = logging.getLogger(__name__)


def bearer_headers(api_key: str | None) -> dict[str, str]:
    """The header that carries the key vLLM accepts (none without a key)."""
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def probe_health(url: str, timeout_s: float, api_key: str | None = None) -> bool:
    """Whether the vLLM server at `url` answers `GET /health` with 200 within `timeout_s`.

    Blocking: run it in a thread (`asyncio.to_thread`). A thread, not the event loop, keeps
    the verdict true when the gateway's loop is busy: a probe never fails for our own delay.
    vLLM leaves `/health` open; the key goes along anyway (a proxy in front may want it).
    """
    headers = bearer_headers(api_key)
    try:
        answer = httpx.get(f"{url}/health", headers=headers, timeout=timeout_s, trust_env=False)
        return answer.status_code == 200
    except httpx.HTTPError as exc:
        log.debug("health probe of %s failed: %r", url, exc)
        return False


class Engine(ABC):
    """One or more vLLM OpenAI servers that the gateway alone talks to.

    `generation` changes whenever the set of servers may have lost state (a restart): runtime
    LoRA adapters loaded before must be loaded again.
    """

    precision: Precision | None = None
    """The dtype lorag chose for the servers it starts, with its reason (None: not ours)."""

    api_key: str | None = None
    """The key the servers accept (`Authorization: Bearer`), sent with every request to them;
    None: they take requests without one."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def serving_urls(self) -> list[str]:
        """The servers up now, for the next request (`service.replica_choice` picks one);
        raises `EngineUnavailable`, with the engine's own reason, when none is."""

    def report_unreachable(self, url: str) -> None:
        """A request could not reach `url` (connection refused or lost): the engine may take
        it out of rotation until it answers again. Default: nothing (one server, supervised)."""
        return None

    def label(self, url: str) -> str:
        """How a message callers may see names the server at `url`: never by its address
        (that goes to the operator's log only)."""
        return "the vLLM server"

    @property
    @abstractmethod
    def urls(self) -> list[str]:
        """Every server URL that is up (for loading adapters on all of them)."""

    @property
    @abstractmethod
    def generation(self) -> int: ...

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """State for `/ready` and logs."""
