"""The answer a retrieval mode gives without the model when no source is found.

A mode's `not_found_answer` (a sentence set by the operator) is returned when retrieval
finds nothing for the question (or nothing above the mode's threshold), instead of letting
the model guess. It is shaped as vLLM's own answers are, JSON or a stream of chunks, so every
OpenAI client reads it unchanged; usage counts no tokens (the model did not run).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["chunks", "completion"]


def _base(request_id: str, model: str, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-lorag-{request_id}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def completion(request_id: str, model: str, sentence: str, lorag: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion whose one choice is `sentence`."""
    message = {"role": "assistant", "content": sentence}
    return {
        **_base(request_id, model, "chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _NO_USAGE,
        "lorag": lorag,
    }


async def chunks(
    request_id: str, model: str, sentence: str, lorag: dict[str, Any], usage: bool
) -> AsyncIterator[bytes]:
    """The same as a stream: the role and the sentence, the finish chunk with `lorag`, the
    usage chunk when the client asked for it, `[DONE]`."""
    base = _base(request_id, model, "chat.completion.chunk")
    delta = {"role": "assistant", "content": sentence}
    events: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "lorag": lorag},
    ]
    if usage:
        events.append({**base, "choices": [], "usage": _NO_USAGE})
    for event in events:
        yield b"data: " + json.dumps(event).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
