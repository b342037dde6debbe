"""Prometheus metrics of one gateway: requests, latency, time to first token, tokens.

Each app owns its `Metrics` (its own registry), so tests and several apps in one process
never share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.label_cap import CappedLabel

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, label_values_cap: int = 100) -> None:
        self.registry = CollectorRegistry()
        self._labels = {
            name: CappedLabel(label_values_cap) for name in ("tenant", "mode", "adapter_version")
        }
        self.served = Counter(
            "lorag_served",
            "Answers by tenant, mode and adapter version (`base`); rare values read `other`.",
            ["tenant", "mode", "adapter_version", "status"],
            registry=self.registry,
        )
        self.retrievals = Counter(
            "lorag_retrievals",
            "Retrievals by outcome (ok, no_results, store_unavailable).",
            ["status"],
            registry=self.registry,
        )
        self.requests = Counter(
            "lorag_requests",
            "Requests by endpoint, mode kind and status.",
            ["endpoint", "kind", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lorag_request_seconds",
            "Time from request to the last byte of the response.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "lorag_time_to_first_token_seconds",
            "Time from request to the first streamed event.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "lorag_tokens",
            "Tokens processed, by kind (prompt, completion).",
            ["kind"],
            registry=self.registry,
        )
        self.adapter_loads = Counter(
            "lorag_adapter_loads", "Adapters loaded into the engine.", registry=self.registry
        )

    def record_usage(self, usage: dict[str, int] | None) -> None:
        if not usage:
            return
        # chat and completions name them prompt/completion; the Responses API input/output
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        self.tokens.labels("prompt").inc(prompt or 0)
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        self.tokens.labels("completion").inc(completion or 0)

    def record_served(self, tenant: str, mode: str, adapter_version: str, status: int) -> None:
        labels = self._labels
        self.served.labels(
            labels["tenant"](tenant),
            labels["mode"](mode),
            labels["adapter_version"](adapter_version),
            str(status),
        ).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
