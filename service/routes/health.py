"""`/health` (the process answers), `/ready` (the engine answers), `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from lorag.hardware import detect_cpu
from service.auth import is_admin

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    state = request.app.state.lorag
    engine = state.engine
    checks: dict[str, object] = {"engine": engine.describe()}
    if is_admin(request):  # what an operator checks; nobody else needs the machine's details
        checks["hardware"] = {
            "cpu": detect_cpu().describe(),
            "engine_dtype": engine.precision.to_json() if engine.precision else None,
        }
    ok = bool(engine.urls)
    for url in engine.urls:
        ok = ok and await state.upstream.healthy(f"{url}/health")
    return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = request.app.state.lorag.metrics
    return Response(registry.render(), media_type=registry.content_type)
