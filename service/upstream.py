"""Talking to vLLM: one pooled aiohttp session, upstream errors mapped to lorag's.

aiohttp rather than httpx here: relaying a token stream costs about half the CPU per event
(C parser), and on a 2-core machine the gateway's CPU is taken from vLLM.

Transport failures become `EngineUnavailable` (503) or `UpstreamTimeout` (504); an error answer
from vLLM becomes `UpstreamError` carrying vLLM's status and message in OpenAI's envelope.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from service.errors import EngineUnavailable, LoragError, UpstreamTimeout

log = logging.getLogger(__name__)

_JSON = {"content-type": "application/json"}


class UpstreamError(LoragError):
    """vLLM answered with an error status; relayed with that status."""

    def __init__(self, status: int, message: str, *, param: str | None = None):
        super().__init__(message, param=param, code=None)
        self.status = status
        self.type = "invalid_request_error" if status < 500 else "server_error"
        if status == 404:
            self.code = "model_not_found"

    @classmethod
    def from_response(cls, status: int, body: bytes) -> UpstreamError:
        message, param = body.decode("utf-8", "replace")[:2000] or f"HTTP {status}", None
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            error = json.loads(body)["error"]
            message, param = str(error.get("message") or message), error.get("param")
        return cls(status, message, param=param if isinstance(param, str) else None)


@contextlib.contextmanager
def mapped_transport_errors() -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise UpstreamTimeout("the model engine did not answer in time") from exc
    except aiohttp.ClientError as exc:
        # the cause names the engine's internal address: for the operator's log, not callers
        log.warning("model engine unreachable: %r", exc)
        raise EngineUnavailable("the model engine is unreachable; retry shortly") from exc


class Upstream:
    """The pooled HTTP client to the engine's servers (opened inside the event loop)."""

    def __init__(self, timeout_s: float, max_connections: int = 512):
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=5),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_json(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        return json.loads(await self.post(url, body, headers))

    async def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> bytes:
        """POST JSON; the answer's bytes, or `UpstreamError` for an error status."""
        payload = json.dumps(body).encode()
        with mapped_transport_errors():
            all_headers = {**_JSON, **(headers or {})}
            async with self.session.post(url, data=payload, headers=all_headers) as answer:
                status, content = answer.status, await answer.read()
        if status >= 400:
            raise UpstreamError.from_response(status, content)
        return content

    async def open_stream(
        self, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """Send a streaming request; return the open response once headers are in."""
        payload = json.dumps(body).encode()
        with mapped_transport_errors():
            response = await self.session.post(url, data=payload, headers={**_JSON, **headers})
            if response.status >= 400:
                content = await response.read()
                response.release()
                raise UpstreamError.from_response(response.status, content)
        return response

    async def healthy(self, url: str) -> bool:
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Yield whole SSE events (without the blank-line terminator) as they arrive."""
    buffer = b""
    with mapped_transport_errors():
        async for chunk in response.content.iter_any():
            buffer += chunk
            while True:
                end = buffer.find(b"\n\n")
                if end < 0:
                    break
                event, buffer = buffer[:end], buffer[end + 2 :]
                if event:
                    yield event
    if buffer.strip():
        yield buffer.strip()
