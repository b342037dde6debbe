"""The remote engine: vLLM servers run elsewhere (`LORAG_VLLM_URLS`); requests are spread
over them round-robin. lorag starts nothing and stops nothing."""

from __future__ import annotations

import itertools

from service.engine.base import Engine
from service.errors import EngineUnavailable


class RemoteEngine(Engine):
    def __init__(self, urls: list[str]):
        if not urls:
            raise EngineUnavailable("no vLLM URLs configured (LORAG_VLLM_URLS)")
        self._urls = [url.rstrip("/") for url in urls]
        self._cycle = itertools.cycle(self._urls)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def pick_url(self) -> str:
        return next(self._cycle)

    @property
    def urls(self) -> list[str]:
        return list(self._urls)

    @property
    def generation(self) -> int:
        return 0

    def describe(self) -> dict[str, object]:
        return {"kind": "remote", "urls": self._urls}
