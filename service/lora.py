"""Live adapters: which adapter versions each vLLM server has loaded, loading on demand.

Every version is served under its own name (`support@v3`), never reloaded under a reused
name (vLLM serves stale results when a name is reloaded with new weights). Promotion is
therefore: load v4, repoint the mode, let v3's running requests finish. Versions beyond the
cap are unloaded least-recently-used first, never while a request uses them. After an engine
restart (`Engine.generation` changes) everything is loaded again on demand.

How a server gets a version's files (`LORAG_ADAPTER_DELIVERY`):
- `path`: the load names the version's folder in the gateway's store; the server must see it
  at that path (the embedded engine does). A server that answers "not found" for a folder the
  gateway holds cannot see the store: that is a configuration error naming the server, at
  its first load, not an adapter that fails again on every request.
- `resolver`: vLLM has no call that loads an adapter by name alone, but any request naming an
  unknown model makes it ask its LoRA resolvers, and lorag's plugin there fetches the version
  from the gateway (`service.engine.lora_resolver`). The load is therefore a `/detokenize` of
  one token naming the version: nothing is generated, errors arrive here at load time, and a
  version already loaded answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from adapters.models import AdapterVersion
from service.engine import Engine
from service.errors import ConfigurationError, EngineUnavailable, ServerError
from service.metrics import Metrics
from service.upstream import Upstream, UpstreamError

__all__ = ["LoraManager"]

log = logging.getLogger(__name__)


class LoraManager:
    def __init__(
        self,
        engine: Engine,
        upstream: Upstream,
        artifact_path: Callable[[AdapterVersion], Path],
        *,
        cap: int,
        metrics: Metrics | None = None,
        delivery: Literal["path", "resolver"] = "path",
    ):
        self.engine = engine
        self.upstream = upstream
        self.artifact_path = artifact_path
        self.delivery = delivery
        self.cap = max(1, cap)
        self.metrics = metrics
        self._loaded: dict[str, OrderedDict[str, None]] = {}
        self._generation = engine.generation
        self._locks: dict[str, asyncio.Lock] = {}
        self._in_use: Counter[tuple[str, str]] = Counter()

    def loaded(self, url: str) -> list[str]:
        self._check_generation()
        return list(self._loaded.get(url, {}))

    async def acquire(self, url: str, version: AdapterVersion) -> str:
        """Ensure `version` is loaded on `url`; it stays loaded until `release`."""
        name = await self.ensure_loaded(url, version)
        self._in_use[(url, name)] += 1
        return name

    def release(self, url: str, name: str) -> None:
        key = (url, name)
        if self._in_use[key] <= 1:
            self._in_use.pop(key, None)
        else:
            self._in_use[key] -= 1

    def in_use(self, url: str, name: str) -> int:
        """How many running requests use adapter `name` on `url` (it is not unloaded while >0)."""
        return self._in_use.get((url, name), 0)

    async def ensure_loaded(self, url: str, version: AdapterVersion) -> str:
        self._check_generation()
        name = version.served_name
        loaded = self._loaded.setdefault(url, OrderedDict())
        if name in loaded:
            loaded.move_to_end(name)
            if len(loaded) > self.cap:  # one that was in use before may go now
                await self._evict(url)
            return name
        lock = self._locks.setdefault(f"{url}|{name}", asyncio.Lock())
        async with lock:
            if name not in loaded:
                if self.delivery == "resolver":
                    await self._load_by_name(url, name)
                else:
                    await self._load(url, name, self.artifact_path(version))
                loaded[name] = None
                if self.metrics:
                    self.metrics.adapter_loads.inc()
            loaded.move_to_end(name)
        await self._evict(url)
        return name

    async def preload(self, version: AdapterVersion) -> None:
        """Load on every server (promotion): the first request then finds it ready."""
        urls = self.engine.urls
        if not urls:
            raise EngineUnavailable("the model engine is starting or restarting; retry shortly")
        for url in urls:
            await self.ensure_loaded(url, version)

    def forget(self, url: str, name: str) -> None:
        """vLLM no longer knows `name` (it restarted behind our back): load again next time."""
        self._loaded.get(url, OrderedDict()).pop(name, None)

    async def unload(self, name: str) -> None:
        # a copy: another request may load an adapter on another server while this one waits
        for url, loaded in list(self._loaded.items()):
            if name in loaded and not self._in_use.get((url, name)):
                await self._unload(url, name)
                loaded.pop(name, None)

    def _check_generation(self) -> None:
        if self.engine.generation != self._generation:
            self._loaded.clear()
            self._generation = self.engine.generation

    async def _evict(self, url: str) -> None:
        loaded = self._loaded.get(url, OrderedDict())
        for name in list(loaded)[:-1]:  # oldest first; never the one just asked for
            if len(loaded) <= self.cap:
                return
            if self._in_use.get((url, name)):
                continue
            await self._unload(url, name)
            loaded.pop(name, None)

    async def _load(self, url: str, name: str, path: Path) -> None:
        body = {"lora_name": name, "lora_path": str(path.resolve())}
        try:
            await self.upstream.post(f"{url}/v1/load_lora_adapter", body)
        except UpstreamError as exc:
            if exc.status == 404 and path.is_dir():  # the folder is here, the server lacks it
                raise self._store_unseen(url, name, path) from exc
            if "already" not in exc.message.lower():
                raise ServerError(f"the engine refused adapter {name}: {exc.message}") from exc
        log.info("loaded adapter %s on %s", name, url)

    def _store_unseen(self, url: str, name: str, path: Path) -> ConfigurationError:
        server = self.engine.label(url)
        log.error(
            "%s (%s) cannot read adapter %s at %s: mount the gateway's adapter store there at "
            "the same path, or use LORAG_ADAPTER_DELIVERY=resolver with lorag's resolver plugin",
            server,
            url,
            name,
            path,
        )
        return ConfigurationError(
            f"{server} cannot read the gateway's adapter store (adapter {name}): mount the "
            "store (LORAG_DATA_DIR/adapters) at the same path on that server, or set "
            "LORAG_ADAPTER_DELIVERY=resolver and install lorag's resolver plugin beside its "
            "vLLM (README: Remote vLLM servers)"
        )

    async def _load_by_name(self, url: str, name: str) -> None:
        """Have the server's resolver plugin fetch and load `name` (`resolver` delivery)."""
        try:
            await self.upstream.post(f"{url}/detokenize", {"model": name, "tokens": [0]})
        except UpstreamError as exc:
            server = self.engine.label(url)
            log.error("%s (%s) could not resolve adapter %s: %s", server, url, name, exc.message)
            if exc.status == 404:  # no resolver answered for it
                raise ConfigurationError(
                    f"{server} found no adapter {name}: is lorag's resolver plugin installed "
                    "beside its vLLM, pointed at this gateway (LORAG_RESOLVER_URL, "
                    "LORAG_RESOLVER_KEY, LORAG_RESOLVER_CACHE) with "
                    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=true? (README: Remote vLLM servers)"
                ) from exc
            raise ServerError(f"{server} could not load adapter {name}: {exc.message}") from exc
        log.info("loaded adapter %s on %s through its resolver", name, url)

    async def _unload(self, url: str, name: str) -> None:
        with contextlib.suppress(EngineUnavailable, UpstreamError):
            await self.upstream.post(f"{url}/v1/unload_lora_adapter", {"lora_name": name})
        log.info("unloaded adapter %s from %s", name, url)
