"""Runs inside the embedded vLLM (`--middleware`): every route but `/health` needs its key.

vLLM's own check (`--api-key` or `VLLM_API_KEY`) guards only the paths under `/v1`, `/v2`,
`/inference` and `/cohere`. vLLM 0.32 serves more than those: with runtime LoRA loading on,
SageMaker's routes `POST /adapters` (load an adapter from any folder vLLM can read) and
`DELETE /adapters/{name}`, and always `/invocations` (generation, any loaded adapter),
`/metrics` (the adapters' names), `/tokenize`, `/scale_elastic_ep` and others, all without a
key. This middleware refuses every HTTP and WebSocket request without
`Authorization: Bearer <VLLM_API_KEY>` with vLLM's own 401 answer, except `/health` (the
gateway's liveness probe): only the gateway, which holds the key, can use the engine.

It fails closed: without a key, vLLM does not start. vLLM imports it by name
(`--middleware service.engine.vllm_guard.GatewayOnly`) and adds it with no arguments; the key
is vLLM's `VLLM_API_KEY`, read through vLLM's own `envs`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["OPEN_PATHS", "GatewayOnly"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})
"""What answers without the key: the liveness probe (it says nothing but 200)."""

_UNAUTHORIZED = json.dumps({"error": "Unauthorized"}).encode()  # what vLLM itself answers


def _vllm_api_key() -> str | None:
    from vllm import envs  # inside the vLLM child only; importing vLLM takes seconds

    key: str | None = envs.VLLM_API_KEY
    return key


class GatewayOnly:
    """Pure ASGI middleware: a request without the engine's key gets 401."""

    def __init__(self, app: ASGIApp, api_key: str | None = None) -> None:
        key = api_key or _vllm_api_key()
        if not key:
            raise RuntimeError(
                "service.engine.vllm_guard needs VLLM_API_KEY: refusing to serve without a key"
            )
        self.app = app
        self._key_hash = hashlib.sha256(key.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

    def _allowed(self, scope: Scope) -> bool:
        path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))
        return path in OPEN_PATHS or self._carries_key(scope)

    def _carries_key(self, scope: Scope) -> bool:
        for name, value in scope.get("headers") or ():
            if name.lower() == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    offered = hashlib.sha256(token.strip().encode()).digest()
                    return secrets.compare_digest(offered, self._key_hash)
        return False
