"""The `Engine` interface: where the vLLM OpenAI servers are, and whether they answer."""

from __future__ import annotations

from abc import ABC, abstractmethod

from lorag.hardware import Precision


class Engine(ABC):
    """One or more vLLM OpenAI servers that the gateway alone talks to.

    `generation` changes whenever the set of servers may have lost state (a restart): runtime
    LoRA adapters loaded before must be loaded again.
    """

    precision: Precision | None = None
    """The dtype lorag chose for the servers it starts, with its reason (None: not ours)."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once a server can take requests; raise `EngineUnavailable` after timeout."""
        return None

    @abstractmethod
    def pick_url(self) -> str:
        """A server URL for the next request; raises `EngineUnavailable` when none is up."""

    @property
    @abstractmethod
    def urls(self) -> list[str]:
        """Every server URL (for loading adapters on all of them)."""

    @property
    @abstractmethod
    def generation(self) -> int: ...

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """State for `/ready` and logs."""
