"""A mode's system prompt (the operator's instructions) placed in a request before it is sent.

Chat: the instructions become the first system message; when the request opens with its own
system (or developer) message of plain text, the two are joined in that one message, the
mode's first, since many chat templates accept a single system message at the start only.
Responses: they go before the request's own `instructions`. Legacy completions take raw text
with no roles, so a mode with instructions refuses them rather than silently dropping them.
"""

from __future__ import annotations

from typing import Any

from service.errors import InvalidRequest

__all__ = ["with_instructions"]

_SEPARATOR = "\n\n"


def with_instructions(endpoint: str, body: dict[str, Any], instructions: str, model: str) -> None:
    """Put `instructions` into `body` (changed in place) for `endpoint`."""
    if endpoint == "responses":
        own = body.get("instructions")
        body["instructions"] = instructions + (_SEPARATOR + own if own else "")
        return
    if endpoint != "chat":
        raise InvalidRequest(
            f"mode `{model}` carries instructions (a system prompt), which need roles: use "
            "/v1/chat/completions or /v1/responses",
            param="model",
            code="unsupported_endpoint",
        )
    messages = list(body.get("messages") or [])
    first = messages[0] if messages else None
    if (
        isinstance(first, dict)
        and first.get("role") in ("system", "developer")
        and isinstance(first.get("content"), str)
    ):
        messages[0] = {
            **first,
            "role": "system",
            "content": instructions + _SEPARATOR + first["content"],
        }
    else:
        messages.insert(0, {"role": "system", "content": instructions})
    body["messages"] = messages
