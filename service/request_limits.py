"""Request body limits: a body over its limit is refused with 413 before it is read whole.

A plain ASGI middleware in front of everything else, so the limit holds for every route,
including those whose body FastAPI reads and parses before authentication runs (declared
bodies: search, admin). Two limits: knowledge ingests (`POST .../knowledge/documents`, file
uploads or JSON documents) get `max_upload_bytes`, every other request `max_request_bytes`.

A declared `Content-Length` over the limit is refused up front without reading anything; a
body sent without one (chunked) is counted while the app reads it, and reading stops at the
first piece past the limit: the app's own answer is dropped and the 413 sent instead.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import RequestTooLarge, envelope

__all__ = ["RequestLimitMiddleware"]

_UPLOAD_PATH = re.compile(r"^(/v1/knowledge/documents|/admin/knowledge/[^/]+/documents)/?$")


def _size(limit: int) -> str:
    if limit % 2**20 == 0:
        return f"{limit // 2**20} MiB"
    if limit % 2**10 == 0:
        return f"{limit // 2**10} KiB"
    return f"{limit} bytes"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_request_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The body limit of this request, and what it applies to (for the message)."""
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if scope.get("method") == "POST" and _UPLOAD_PATH.match(path):
            return self.max_upload_bytes, "a knowledge upload"
        return self.max_request_bytes, "a request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope)
        problem = RequestTooLarge(f"{what} may be at most {_size(limit)}; this one is larger")
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, problem)
            return

        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    refused = True
                    raise problem
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's own answer to the cut-off body (a 400 or 500): dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused:
            await _refuse(send, problem)


async def _refuse(send: Send, problem: RequestTooLarge) -> None:
    body = json.dumps(
        envelope(problem.message, type=problem.type, param=problem.param, code=problem.code)
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
