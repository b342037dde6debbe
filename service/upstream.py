"""Talking to vLLM: one pooled aiohttp session, upstream errors mapped to lorag's.

aiohttp rather than httpx here: relaying a token stream costs about half the CPU per event
(C parser), and on a 2-core machine the gateway's CPU is taken from vLLM.

Every request carries the engine's key (`Authorization: Bearer`, when it has one).

Transport failures become `EngineUnavailable` (503) or `UpstreamTimeout` (504); a connection
that could not even be opened is `ConnectFailed` (a 503 too, but nothing reached the server, so
the request may be sent to another one). vLLM refusing the gateway's key (401) is
`EngineRefusedKey`, a 503 as well: the caller's own key is not the problem. Any other error
answer from vLLM becomes `UpstreamError` carrying vLLM's status and message in OpenAI's
envelope.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from service.engine.base import bearer_headers
from service.errors import EngineUnavailable, LoragError, UpstreamTimeout

__all__ = [
    "ConnectFailed",
    "EngineRefusedKey",
    "Upstream",
    "UpstreamError",
    "mapped_transport_errors",
    "raise_for_status",
    "sse_events",
]

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


class ConnectFailed(EngineUnavailable):
    """No connection to the server could be opened (refused, unresolvable, connect timeout):
    nothing was sent, so the request is safe to send to another server."""


class EngineRefusedKey(EngineUnavailable):
    """vLLM answered 401: it does not take the gateway's key (`LORAG_VLLM_API_KEY` differs
    from the server's `--api-key`, or the server wants one and none is set)."""


def raise_for_status(url: str, status: int, content: bytes) -> None:
    """Raise the error for vLLM's error answer (none below 400)."""
    if status == 401:
        # the operator's problem, not the caller's: their key is fine, ours is not
        log.error("vLLM at %s refused the gateway's key (check LORAG_VLLM_API_KEY)", url)
        raise EngineRefusedKey("the model engine refused the gateway; retry shortly")
    if status >= 400:
        raise UpstreamError.from_response(status, content)


@contextlib.contextmanager
def mapped_transport_errors() -> Iterator[None]:
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # before TimeoutError: a connect timeout is one; the cause names the engine's address
        log.warning("model engine unreachable (no connection): %r", exc)
        raise ConnectFailed("the model engine is unreachable; retry shortly") from exc
    except TimeoutError as exc:
        raise UpstreamTimeout("the model engine did not answer in time") from exc
    except aiohttp.ClientError as exc:
        # the cause names the engine's internal address: for the operator's log, not callers
        log.warning("model engine unreachable: %r", exc)
        raise EngineUnavailable("the model engine is unreachable; retry shortly") from exc


class Upstream:
    """The pooled HTTP client to the engine's servers (opened inside the event loop)."""

    def __init__(self, timeout_s: float, max_connections: int = 512, *, api_key: str | None = None):
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._headers = bearer_headers(api_key)  # on every request (the engine's key)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=5),
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                headers=self._headers,
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
        answer: dict[str, Any] = json.loads(await self.post(url, body, headers))
        return answer

    async def post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> bytes:
        """POST JSON; the answer's bytes, or `UpstreamError` for an error status."""
        payload = json.dumps(body).encode()
        with mapped_transport_errors():
            all_headers = {**_JSON, **(headers or {})}
            async with self.session.post(url, data=payload, headers=all_headers) as answer:
                status, content = answer.status, await answer.read()
        raise_for_status(url, status, content)
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
                raise_for_status(url, response.status, content)
        return response

    async def healthy(self, url: str) -> bool:
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Yield whole SSE events (without the blank-line terminator) as they arrive.

    A connection that breaks mid-stream (the engine died) still yields every whole event that
    arrived before the break, then raises (mapped: `EngineUnavailable`).
    """
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            buffer += chunk
            events, buffer = _split_events(buffer)
            for event in events:
                yield event
    except aiohttp.ClientPayloadError as exc:
        events, _ = _split_events(buffer + _unread(response.content))
        for event in events:
            yield event
        with mapped_transport_errors():
            raise exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        with mapped_transport_errors():
            raise exc
    if buffer.strip():
        yield buffer.strip()


def _split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The whole non-empty events in `buffer`, and what is left after the last one."""
    *events, rest = buffer.split(b"\n\n")
    return [event for event in events if event], rest


def _unread(content: aiohttp.StreamReader) -> bytes:
    """What arrived but was not read yet: aiohttp raises a broken stream's error before it
    hands out the data it still holds (read from its buffer; empty if that ever changes)."""
    held = getattr(content, "_buffer", None)
    offset = getattr(content, "_buffer_offset", 0)
    try:
        return b"".join(held)[offset:] if held else b""
    except TypeError:
        return b""
