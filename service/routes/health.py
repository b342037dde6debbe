"""`/health` (the process answers), `/ready` (the engine answers), `/metrics`.

`/health` and `/ready` stay open (load balancers probe them), but `/ready` shows its details
(engine pid, URLs, restarts, last error, hardware) only to callers with the admin key. With
`LORAG_REQUIRE_API_KEY=true`, `/metrics` needs the admin key (Prometheus sends it as a bearer
token: `authorization: {credentials: ...}` in its scrape config).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from lorag.hardware import detect_cpu
from service.auth import is_admin, require_admin_if_keys_required
from service.state import app_state

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = app_state(request)
    engine = state.engine
    # ready = at least one engine server answers: with several, the gateway routes around one
    # that is down, so a load balancer must not take every gateway out for it
    answers = await asyncio.gather(
        *(state.upstream.healthy(f"{url}/health") for url in engine.urls)
    )
    ok = any(answers)
    body: dict[str, object] = {"ready": ok}
    if is_admin(request):  # what an operator checks; nobody else needs the machine's details
        body["engine"] = engine.describe()
        body["hardware"] = {
            "cpu": detect_cpu().describe(),
            "engine_dtype": engine.precision.to_json() if engine.precision else None,
        }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", dependencies=[Depends(require_admin_if_keys_required)])
async def metrics(request: Request) -> Response:
    registry = app_state(request).metrics
    return Response(registry.render(), media_type=registry.content_type)
