"""`Executors`: the gateway's bounded worker-thread pools, one per kind of blocking work.

asyncio's default executor is one small pool (min(32, CPUs + 4) threads) shared by every
`asyncio.to_thread`: a burst of slow deletes or uploads would fill it and queue every
tenant's RAG retrieval behind them. So the gateway's blocking calls run on a pool of their
kind, each with its own threads:

    lookup     each request's registry reads: its key's tenant, its model's mode and version
               (a network round trip each with a PostgreSQL registry; reads never wait for
               the write lock)
    retrieval  searches: embedding the query and the store's search (`/v1/knowledge/search`
               and the RAG step of chat completions), the prompt's token budget
    knowledge  ingest submissions, upload copying and parsing, document listing, deletes,
               tenant purges, opening the knowledge base
    registry   the adapter and tenant registry's SQLite calls of the admin API, which may wait
               for another process's write lock (`registry_busy_timeout_s`)

A full pool queues its own kind only. The default executor is left to the engine's supervisor
(health probes, kill and terminate), so no burst of requests delays them either.

The pools start with the app's lifespan and are shut down when it ends (a call still running
finishes first, queued ones are cancelled); an app served without its lifespan (a test's
`httpx.ASGITransport`) starts each pool on first use.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

PoolKind = Literal["lookup", "retrieval", "knowledge", "registry"]
POOL_KINDS: tuple[PoolKind, ...] = ("lookup", "retrieval", "knowledge", "registry")
THREAD_PREFIX = "lorag-pool"

_T = TypeVar("_T")


class Executors:
    """One bounded `ThreadPoolExecutor` per kind of work, sized by `threads`."""

    def __init__(self, threads: Mapping[PoolKind, int]) -> None:
        missing = set(POOL_KINDS) - set(threads)
        if missing or any(threads[kind] < 1 for kind in POOL_KINDS):
            raise ValueError(f"every pool needs at least one thread: {dict(threads)}")
        self._threads = dict(threads)
        self._pools: dict[PoolKind, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every pool's executor (the app's lifespan; idempotent)."""
        for kind in POOL_KINDS:
            self._pool(kind)

    def shutdown(self) -> None:
        """Stop every pool: running calls finish, queued ones are cancelled."""
        with self._lock:
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    async def run(self, kind: PoolKind, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`call(*args, **kwargs)` on the `kind` pool, in the caller's context (request id)."""
        context = contextvars.copy_context()
        bound = functools.partial(context.run, call, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(kind), bound)

    def runner(self, kind: PoolKind) -> Callable[..., Any]:
        """`run` bound to one pool: an async callable taking `call, *args, **kwargs`."""
        return functools.partial(self.run, kind)

    def _pool(self, kind: PoolKind) -> ThreadPoolExecutor:
        with self._lock:
            pool = self._pools.get(kind)
            if pool is None:
                pool = ThreadPoolExecutor(
                    self._threads[kind], thread_name_prefix=f"{THREAD_PREFIX}-{kind}"
                )
                self._pools[kind] = pool
            return pool


__all__ = ["POOL_KINDS", "Executors", "PoolKind"]
