"""Which vLLM server (replica) answers a request.

`adapter-aware` (the default): a request for an adapter version goes to a healthy server that
already has it loaded, the least busy of those; only when none has it, or when every holder
is `spill` or more requests busier than the least busy server, to the least busy server
(which then loads it). A base-model request goes to the least busy server. Ties rotate, so
equal servers share the work. This is what the inference gateways that route LoRA traffic do
(the Gateway API Inference Extension and llm-d score replicas by the adapters vLLM reports
loaded and by queue depth); lorag knows both without asking vLLM, since it does every load
itself (`service.lora`) and sends every request.

`round-robin`: each request to the next healthy server in turn, whatever it holds (every
replica then ends up loading every adapter; kept for comparison: bench/routing.py).

Busy = requests this gateway has in flight there (from sending until the answer, or the
stream, has ended). Which servers are healthy is the engine's business (`Engine.urls`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Literal

from service.errors import EngineUnavailable

__all__ = ["ReplicaChooser", "RoutingPolicy"]

RoutingPolicy = Literal["adapter-aware", "round-robin"]
SPILL = 4  # in-flight requests a holder may be ahead of the least busy server


class ReplicaChooser:
    def __init__(self, policy: RoutingPolicy = "adapter-aware", *, spill: int = SPILL):
        self.policy = policy
        self.spill = max(0, spill)
        self._in_flight: Counter[str] = Counter()
        self._turn = 0

    def choose(self, up: Sequence[str], holds: Callable[[str], bool] | None = None) -> str:
        """A server among `up` (the healthy ones, in a stable order); `holds(url)`: whether the
        requested adapter is loaded there (None for the base model)."""
        if not up:
            raise EngineUnavailable("no model engine server is answering; retry shortly")
        self._turn += 1
        if self.policy == "round-robin" or len(up) == 1:
            return up[self._turn % len(up)]
        least = min(self._in_flight[url] for url in up)
        pool = list(up)
        if holds is not None:
            holders = [url for url in up if holds(url)]
            if holders and min(self._in_flight[url] for url in holders) < least + self.spill:
                pool = holders
        quietest = min(self._in_flight[url] for url in pool)
        ties = [url for url in pool if self._in_flight[url] == quietest]
        return ties[self._turn % len(ties)]

    def started(self, url: str) -> None:
        self._in_flight[url] += 1

    def finished(self, url: str) -> None:
        if self._in_flight[url] <= 1:
            self._in_flight.pop(url, None)
        else:
            self._in_flight[url] -= 1

    def in_flight(self) -> dict[str, int]:
        return dict(self._in_flight)
