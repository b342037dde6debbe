"""A vLLM plugin: adapter versions reach a vLLM server by name, with no folder shared with the
gateway.

vLLM calls `register` in each of its processes (entry point `lorag-adapter-resolver`, group
`vllm.general_plugins`) where lorag is installed beside it. Where `LORAG_RESOLVER_URL` is set
it adds a LoRA resolver to vLLM's resolver registry; elsewhere (the embedded engine, a vLLM
started by hand) it does nothing. vLLM 0.32's OpenAI server, with runtime LoRA updating on,
asks its resolvers in turn for any `model` a request names that it neither serves nor has
loaded (`OpenAIServingModels.resolve_lora`, one lock per name), then loads what one returns.
This one answers for `name@vN` only, with the folder `ReplicaAdapterCache` keeps on the
server's own disk: fetched from the gateway's `/internal/adapters` with the replica key,
checked against the registry's sha256, renamed into place whole.

The gateway (`LORAG_ADAPTER_DELIVERY=resolver`) has a server load a version by naming it in a
`/detokenize` call (`service.lora`); a request for a version the server lost (it restarted)
resolves it again by itself.

Its settings are environment variables of vLLM's process (lorag's `Settings` does not run
there; this is the one other place that reads the environment):

    LORAG_RESOLVER_URL       the gateway's base URL, as this server reaches it
    LORAG_RESOLVER_KEY       the gateway's LORAG_REPLICA_KEY; or LORAG_RESOLVER_KEY_FILE: a file
                             holding it (a mounted secret)
    LORAG_RESOLVER_CACHE     a folder on this server's disk for the fetched versions

plus vLLM's own `VLLM_ALLOW_RUNTIME_LORA_UPDATING=true`, without which vLLM never asks a
resolver. A URL without a key, a cache folder or that switch stops vLLM at start: a
misconfigured replica is found before it serves, not by a request that 404s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorag.errors import ConfigurationError

if TYPE_CHECKING:  # imported where the plugin is on: a vLLM without LORAG_RESOLVER_URL pays nothing
    from service.engine.replica_cache import ReplicaAdapterCache

__all__ = ["PLUGIN_NAME", "RESOLVER_NAME", "ResolverConfig", "gateway_resolver", "register"]

PLUGIN_NAME = "lorag-adapter-resolver"
"""The plugin's entry point name (pyproject.toml), as `VLLM_PLUGINS` names it."""

RESOLVER_NAME = "lorag gateway"
"""The name it has in vLLM's resolver registry."""

log = logging.getLogger("vllm.plugins.lorag")  # vLLM's handler writes it to its log


@dataclass(frozen=True)
class ResolverConfig:
    """What the plugin reads from its process's environment."""

    gateway_url: str
    key: str = field(repr=False)
    cache_dir: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ResolverConfig | None:
        """The configuration; None where `LORAG_RESOLVER_URL` is unset (the plugin is off).
        `ConfigurationError` for a URL without the rest."""
        url = environ.get("LORAG_RESOLVER_URL", "").strip()
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                "LORAG_RESOLVER_URL must be the gateway's http:// or https:// base URL"
            )
        cache = environ.get("LORAG_RESOLVER_CACHE", "").strip()
        if not cache:
            raise ConfigurationError(
                "LORAG_RESOLVER_URL is set but LORAG_RESOLVER_CACHE is not: name a folder on "
                "this server's disk for the adapters it fetches"
            )
        return cls(url, _key(environ), Path(cache))


def _key(environ: Mapping[str, str]) -> str:
    key = environ.get("LORAG_RESOLVER_KEY", "").strip()
    key_file = environ.get("LORAG_RESOLVER_KEY_FILE", "").strip()
    if key and key_file:
        raise ConfigurationError("set LORAG_RESOLVER_KEY or LORAG_RESOLVER_KEY_FILE, not both")
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"LORAG_RESOLVER_KEY_FILE cannot be read: {exc.strerror}"
            ) from exc
    if not key:
        raise ConfigurationError(
            "LORAG_RESOLVER_URL is set but no key is: set LORAG_RESOLVER_KEY (or "
            "LORAG_RESOLVER_KEY_FILE) to the gateway's LORAG_REPLICA_KEY"
        )
    return key


def gateway_resolver(cache: ReplicaAdapterCache) -> Any:
    """vLLM's `LoRAResolver` answering from `cache`. vLLM is imported here, in its own process
    only (importing it takes seconds); to mypy its classes are `Any`."""
    from vllm.lora.request import LoRARequest
    from vllm.lora.resolver import LoRAResolver

    class GatewayResolver(LoRAResolver):  # type: ignore[misc]
        async def resolve_lora(self, base_model_name: str, lora_name: str) -> Any:
            folder = await cache.folder(lora_name)
            if folder is None:
                return None  # not a version the gateway has: vLLM answers 404
            # vLLM gives it an id of its own before loading it
            return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=str(folder))

    return GatewayResolver()


def register() -> None:
    """Add the resolver to vLLM's registry where `LORAG_RESOLVER_URL` is set."""
    config = ResolverConfig.from_environment(os.environ)
    if config is None:
        return
    from vllm import envs
    from vllm.lora.resolver import LoRAResolverRegistry

    from service.engine.replica_cache import ReplicaAdapterCache

    if not envs.VLLM_ALLOW_RUNTIME_LORA_UPDATING:
        raise ConfigurationError(
            "LORAG_RESOLVER_URL is set but VLLM_ALLOW_RUNTIME_LORA_UPDATING is not true: "
            "vLLM would never ask the resolver for an adapter"
        )
    cache = ReplicaAdapterCache(config.gateway_url, config.key, config.cache_dir)
    cache.prepare()
    LoRAResolverRegistry.register_resolver(RESOLVER_NAME, gateway_resolver(cache))
    log.info(
        "%s: adapters are fetched from %s into %s",
        PLUGIN_NAME,
        config.gateway_url,
        config.cache_dir,
    )
