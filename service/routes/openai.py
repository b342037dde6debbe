"""`/v1/chat/completions`, `/v1/completions`, `/v1/responses`, `/v1/embeddings`, `/v1/models`.

A completion runs while the route watches the client's connection: a client that goes away
before its answer starts cancels the request, which closes the upstream connection, and vLLM
stops generating for nobody. (Once a stream has started, its relay closes the upstream when
the client leaves.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ingest.embedding import resolve_model
from service.auth import Caller, get_caller
from service.handlers.completions import CLIENT_CLOSED, Endpoint
from service.handlers.embeddings import embedding_response
from service.protocol.openai import EmbeddingRequest, ModelCard, ModelList
from service.state import app_state
from service.validation import parse_body

__all__ = ["router"]

router = APIRouter()
log = logging.getLogger(__name__)
_STARTED = int(time.time())


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, caller: Caller = Depends(get_caller)
) -> JSONResponse | StreamingResponse | Response:
    return await _complete("chat", request, caller)


@router.post("/v1/completions", response_model=None)
async def completions(
    request: Request, caller: Caller = Depends(get_caller)
) -> JSONResponse | StreamingResponse | Response:
    return await _complete("completions", request, caller)


@router.post("/v1/responses", response_model=None)
async def responses(
    request: Request, caller: Caller = Depends(get_caller)
) -> JSONResponse | StreamingResponse | Response:
    """OpenAI's Responses API for base and adapter modes, stateless (`previous_response_id`,
    `background` and `store` are not kept)."""
    return await _complete("responses", request, caller)


async def _complete(
    endpoint: Endpoint, request: Request, caller: Caller
) -> JSONResponse | StreamingResponse | Response:
    state = app_state(request)
    raw = await request.body()
    work = state.completions.handle(endpoint, raw, caller, request.state.request_id)
    return await _unless_client_leaves(request, work)


async def _client_left(request: Request) -> None:
    """Return when the client disconnects (the body is read: only that message is left)."""
    while (await request.receive())["type"] != "http.disconnect":
        continue


async def _unless_client_leaves(
    request: Request, work: Awaitable[JSONResponse | StreamingResponse]
) -> JSONResponse | StreamingResponse | Response:
    """`work`'s response; cancelled (upstream call included) if the client leaves first."""
    task = asyncio.ensure_future(work)
    left = asyncio.create_task(_client_left(request))
    try:
        await asyncio.wait({task, left}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself was cancelled: so is its work
        task.cancel()
        raise
    finally:
        left.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task})  # its cleanup ran: the upstream connection is closed
    if not task.cancelled() and task.exception() is not None:
        log.info("a request whose client left failed: %r", task.exception())
    log.info("client disconnected before its answer; upstream request cancelled")
    return Response(status_code=CLIENT_CLOSED)


@router.post("/v1/embeddings")
async def embeddings(request: Request, caller: Caller = Depends(get_caller)) -> dict[str, Any]:
    """The knowledge base's embedding model (`service.handlers.embeddings`)."""
    state = app_state(request)
    body = parse_body(EmbeddingRequest, await request.body())
    knowledge = await state.knowledge()
    return await state.executors.run("retrieval", embedding_response, body, knowledge.embedder)


@router.get("/v1/models")
async def list_models(request: Request, caller: Caller = Depends(get_caller)) -> ModelList:
    state = app_state(request)
    cards = []
    for name, mode in await state.router.list_models(caller):
        extra = None
        if mode is not None:
            extra = {
                "default": mode.is_default,
                "adapter": mode.adapter is not None,
                "retrieval": bool((mode.retrieval or {}).get("enabled")),
                "instructions": bool(mode.system_prompt),
            }
        cards.append(
            ModelCard(
                id=name,
                created=_STARTED,
                owned_by="lorag",
                max_model_len=state.settings.max_model_len,
                lorag=extra,
            )
        )
    # the knowledge base's embedding model serves /v1/embeddings (named without loading it)
    embedding_name = resolve_model(state.settings.embedding_model)[1]
    cards.append(
        ModelCard(id=embedding_name, created=_STARTED, owned_by="lorag", lorag={"embedding": True})
    )
    return ModelList(data=cards)
