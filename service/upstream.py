"""Talking to vLLM: one pooled httpx client, upstream errors mapped to lorag's.

Transport failures become `EngineUnavailable` (503) or `UpstreamTimeout` (504); an error
answer from vLLM becomes `UpstreamError` carrying vLLM's status and message in OpenAI's
envelope.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from service.errors import EngineUnavailable, LoragError, UpstreamTimeout


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
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            error = json.loads(body)["error"]
            message, param = str(error.get("message") or message), error.get("param")
        return cls(status, message, param=param if isinstance(param, str) else None)


def new_client(timeout_s: float, max_connections: int = 512) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=64),
    )


@contextlib.contextmanager
def mapped_transport_errors() -> Any:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"the model engine did not answer in time ({exc!r})") from exc
    except httpx.TransportError as exc:
        raise EngineUnavailable(f"the model engine is unreachable ({exc!r})") from exc


async def post_json(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    with mapped_transport_errors():
        response = await client.post(url, json=body, headers=headers)
    if response.status_code >= 400:
        raise UpstreamError.from_response(response.status_code, response.content)
    return response.json()


async def open_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    """Send a streaming request; return the open response once headers are in."""
    request = client.build_request("POST", url, json=body, headers=headers)
    with mapped_transport_errors():
        response = await client.send(request, stream=True)
    if response.status_code >= 400:
        content = await response.aread()
        await response.aclose()
        raise UpstreamError.from_response(response.status_code, content)
    return response


async def sse_events(response: httpx.Response) -> AsyncIterator[bytes]:
    """Yield whole SSE events (without the blank-line terminator) as they arrive."""
    buffer = b""
    with mapped_transport_errors():
        async for chunk in response.aiter_raw():
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
