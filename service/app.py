"""`build_app(settings)`: the gateway wired from one `Settings`. No module globals.

routes (thin HTTP) -> handlers (logic) -> interfaces (Engine, Registry, KnowledgeBase).
Blocking calls run on the state's bounded worker pools (`service.executors`), started and
shut down with the app's lifespan.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lorag.base_model import served_model_name
from lorag.errors import LoragError
from lorag.settings import Settings
from service.engine import Engine, build_engine
from service.errors import envelope, to_envelope
from service.executors import Executors
from service.handlers.completions import CompletionsHandler
from service.lora import LoraManager
from service.metrics import Metrics
from service.replica_choice import ReplicaChooser
from service.request_ids import RequestIdMiddleware
from service.request_limits import RequestLimitMiddleware
from service.retrieval import Retriever
from service.routes import admin, health, internal, knowledge, openai
from service.routing import Router
from service.state import AppState
from service.upstream import Upstream
from service.wiring import open_knowledge, open_registry

__all__ = ["AppState", "build_app", "build_state"]

log = logging.getLogger(__name__)


def build_state(settings: Settings, engine: Engine | None = None) -> AppState:
    engine = engine or build_engine(settings)
    upstream = Upstream(settings.request_timeout_s, api_key=engine.api_key)
    registry = open_registry(settings, busy_timeout_s=settings.registry_busy_timeout_s)
    metrics = Metrics(settings.metrics_label_values)
    lora = LoraManager(
        engine,
        upstream,
        registry.artifact_path,
        cap=settings.max_cpu_loras,
        metrics=metrics,
        delivery=settings.adapter_delivery,
    )
    executors = Executors(
        {
            "lookup": settings.lookup_threads,
            "retrieval": settings.retrieval_threads,
            "knowledge": settings.knowledge_threads,
            "registry": settings.registry_threads,
        }
    )
    router = Router(registry, served_model_name(settings), executors.runner("lookup"))
    state = AppState(
        settings=settings,
        engine=engine,
        upstream=upstream,
        registry=registry,
        router=router,
        lora=lora,
        metrics=metrics,
        executors=executors,
        open_knowledge=open_knowledge,
    )
    retriever = Retriever(
        state.knowledge,
        state.tokenizer,
        settings.max_model_len,
        off_loop=executors.runner("retrieval"),
    )
    replicas = ReplicaChooser(settings.routing)
    state.completions = CompletionsHandler(
        engine, upstream, router, lora, metrics, retriever, replicas
    )
    return state


def build_app(settings: Settings, *, engine: Engine | None = None) -> FastAPI:
    state = build_state(settings, engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.executors.start()
        try:
            await state.engine.start()
            state.open_knowledge_soon()
            try:
                yield
            finally:
                await state.engine.stop()
                await state.upstream.close()
                await state.close_knowledge()
        finally:
            state.executors.shutdown()
            state.registry.close()  # a PostgreSQL registry's pooled connections

    app = FastAPI(
        title="lorag",
        description="OpenAI-compatible gateway with per-tenant LoRA adapters and retrieval.",
        version="0.1.0",
        lifespan=lifespan,
        # closed to anonymous callers: no interactive docs or schema either
        docs_url=None if settings.require_api_key else "/docs",
        redoc_url=None if settings.require_api_key else "/redoc",
        openapi_url=None if settings.require_api_key else "/openapi.json",
    )
    app.state.lorag = state
    app.add_middleware(
        RequestLimitMiddleware,
        max_request_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestIdMiddleware)  # outermost: the 413 carries the request id too
    for module in (openai, health, admin, knowledge, internal):
        app.include_router(module.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def mapped(request: Request, exc: Exception) -> JSONResponse:
        status, body = to_envelope(exc)
        if status >= 500:
            log.error("request failed: %s", exc, exc_info=not hasattr(exc, "status"))
        return JSONResponse(body, status_code=status)

    for error_class in (Exception, LoragError):
        app.add_exception_handler(error_class, mapped)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        body = envelope(message, type="invalid_request_error", param=param, code="invalid_request")
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = envelope(str(exc.detail), type=kind, code=None)
        return JSONResponse(body, status_code=exc.status_code)
