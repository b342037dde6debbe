"""`/v1/chat/completions`, `/v1/completions`, `/v1/models`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from service.auth import Caller, get_caller
from service.protocol.openai import ModelCard, ModelList

router = APIRouter()
_STARTED = int(time.time())


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    request: Request, caller: Caller = Depends(get_caller)
) -> JSONResponse | StreamingResponse:
    state = request.app.state.lorag
    raw = await request.body()
    return await state.completions.handle("chat", raw, caller, request.state.request_id)


@router.post("/v1/completions", response_model=None)
async def completions(
    request: Request, caller: Caller = Depends(get_caller)
) -> JSONResponse | StreamingResponse:
    state = request.app.state.lorag
    raw = await request.body()
    return await state.completions.handle("completions", raw, caller, request.state.request_id)


@router.get("/v1/models")
async def list_models(request: Request, caller: Caller = Depends(get_caller)) -> ModelList:
    state = request.app.state.lorag
    cards = []
    for name, mode in state.router.list_models(caller):
        extra = None
        if mode is not None:
            extra = {
                "default": mode.is_default,
                "adapter": mode.adapter is not None,
                "retrieval": bool((mode.retrieval or {}).get("enabled")),
            }
        cards.append(ModelCard(id=name, created=_STARTED, owned_by="lorag", lorag=extra))
    return ModelList(data=cards)
