"""From a request's `model` field to what serves it: base model or an adapter version.

A tenant's `model` names one of its modes; the base model's name means the tenant's default
mode. A mode of another tenant is a 404 exactly like one that does not exist.

Every request reads the registry (nothing is cached, so a promotion made by any gateway is
served at once): with a PostgreSQL registry each read is a network round trip, so the reads
run off the event loop, on the gateway's `lookup` pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from adapters.models import AdapterVersion, Mode
from adapters.registry import Registry
from lorag.retrieval_policy import RetrievalSettings, mode_settings
from service.caller import Caller
from service.errors import NotFound

__all__ = ["Router", "Target"]

_T = TypeVar("_T")
OffLoop = Callable[..., Awaitable[Any]]
"""Runs `call(*args)` on a worker thread (`Executors.runner("lookup")`)."""


async def _inline(call: Callable[..., _T], *args: Any) -> _T:
    return call(*args)


@dataclass(frozen=True)
class Target:
    requested: str
    mode: Mode | None = None
    adapter: AdapterVersion | None = None
    retrieval: RetrievalSettings | None = None  # None: the mode retrieves nothing

    @property
    def kind(self) -> str:
        rag = self.retrieval is not None
        if self.adapter is None:
            return "rag" if rag else "base"
        return "hybrid" if rag else "adapter"


class Router:
    def __init__(self, registry: Registry, base_name: str, off_loop: OffLoop = _inline):
        self.registry = registry
        self.base_name = base_name
        self._off_loop = off_loop

    async def resolve(self, caller: Caller, model: str) -> Target:
        """What serves `model` for `caller` (its registry reads in one trip off the loop)."""
        target: Target = await self._off_loop(self._resolve, caller, model)
        return target

    async def list_models(self, caller: Caller) -> list[tuple[str, Mode | None]]:
        models: list[tuple[str, Mode | None]] = await self._off_loop(self._list_models, caller)
        return models

    def _resolve(self, caller: Caller, model: str) -> Target:
        if caller.tenant is None:
            if model != self.base_name:
                raise _unknown(model)
            return Target(requested=model)
        tenant = caller.tenant.id
        if model == self.base_name:
            mode = self.registry.default_mode(tenant)
            if mode is None:
                return Target(requested=model)
        else:
            try:
                mode = self.registry.get_mode(tenant, model)
            except (LookupError, ValueError):  # no such mode, or not even a valid name
                raise _unknown(model) from None
        adapter = None
        if mode.adapter is not None:
            adapter = self.registry.get_version(mode.adapter, mode.version)
        # the mode's stored JSON, validated (a bad one is a 400 naming the setting)
        retrieval = mode_settings(mode.retrieval)
        return Target(requested=model, mode=mode, adapter=adapter, retrieval=retrieval)

    def _list_models(self, caller: Caller) -> list[tuple[str, Mode | None]]:
        if caller.tenant is None:
            return [(self.base_name, None)]
        modes = self.registry.list_modes(caller.tenant.id)
        return [(mode.name, mode) for mode in modes]


def _unknown(model: str) -> NotFound:
    return NotFound(f"The model `{model}` does not exist.", param="model", code="model_not_found")
