"""`AppState`: what the gateway holds while it runs, and `app_state(request)` to reach it.

`build_app` (`service.app`) builds one and keeps it on the app; routes and `service.auth`
fetch it with `app_state(request)`, typed, never through `request.app.state` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from adapters.registry import Registry
from ingest.errors import StoreFull, StoreLocked
from lorag.base_model import BaseModelInfo, resolve_base_model
from lorag.prompting import Tokenizer
from lorag.settings import Settings
from service.engine import Engine
from service.errors import StoreUnavailable
from service.executors import Executors
from service.handlers.completions import CompletionsHandler
from service.lora import LoraManager
from service.metrics import Metrics
from service.routing import Router
from service.upstream import Upstream
from service.wiring import base_model_info

if TYPE_CHECKING:
    from ingest.knowledge import KnowledgeBase

__all__ = ["AppState", "app_state"]

log = logging.getLogger(__name__)


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    upstream: Upstream
    registry: Registry
    router: Router
    lora: LoraManager
    metrics: Metrics
    executors: Executors
    open_knowledge: Callable[[Settings], KnowledgeBase]
    completions: CompletionsHandler = field(init=False)
    _knowledge: asyncio.Task[KnowledgeBase] | None = field(default=None, repr=False)
    _tokenizer: Tokenizer | None = field(default=None, repr=False)

    @functools.cached_property
    def base_info(self) -> BaseModelInfo:
        return base_model_info(self.settings)

    def tokenizer(self) -> Tokenizer:
        """The served model's tokenizer (for prompt budgets), loaded on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(self.settings))
        return self._tokenizer

    def open_knowledge_soon(self) -> None:
        """Open the knowledge base in the background (it loads the embedding model)."""
        if self._knowledge is None:
            opening = self.executors.run("knowledge", self.open_knowledge, self.settings)
            self._knowledge = asyncio.create_task(opening)

    async def knowledge(self) -> KnowledgeBase:
        """The knowledge base; `StoreUnavailable` (503) while it cannot be opened."""
        self.open_knowledge_soon()
        assert self._knowledge is not None
        try:
            return await asyncio.shield(self._knowledge)
        except Exception as exc:
            self._knowledge = None  # the next request tries again
            # the cause names the server's folders: it goes to the operator's log, not callers
            log.warning("knowledge base unavailable: %s", getattr(exc, "message", None) or exc)
            if isinstance(exc, StoreLocked):
                reason = "it is held by another process"
            elif isinstance(exc, StoreFull):
                reason = "its disk is full"
            else:
                reason = "it could not be opened"
            raise StoreUnavailable(
                f"the knowledge base is unavailable ({reason}); retry shortly"
            ) from exc

    async def close_knowledge(self) -> None:
        task, self._knowledge = self._knowledge, None
        if task is None:
            return
        with contextlib.suppress(Exception):
            (await task).close()


def app_state(request: Request) -> AppState:
    """The state `build_app` keeps on the request's app."""
    state = request.app.state.lorag
    assert isinstance(state, AppState), "the app was not built by service.app.build_app"
    return state
