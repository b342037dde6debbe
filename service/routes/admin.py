"""`/admin/...`: operators manage adapters, tenants and modes (admin key).

Setting a mode is the promotion path: the new version is loaded into the engine first, then
the mode points at it, so new requests use it at once and running ones finish on the old one.

Registry calls (blocking SQLite, which may wait for another process's write lock) run on the
registry's worker threads (`service.executors`), never on the event loop: a registry locked
past its busy timeout is a 503 (`RegistryBusy`) while the gateway keeps serving everything
else, retrieval included (its own pool).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Request

from adapters.promotion import check_promotion
from lorag.names import parse_ref
from lorag.retrieval_policy import normalized
from service.auth import require_admin
from service.errors import EngineUnavailable, StoreUnavailable
from service.protocol.admin import Actor, CreateTenant, ImportAdapter, SetMode
from service.state import app_state

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


_T = TypeVar("_T")


async def _registry(request: Request, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A blocking registry call, run on the registry's worker threads."""
    return await app_state(request).executors.run("registry", call, *args, **kwargs)


@router.get("/adapters")
async def list_adapters(request: Request) -> dict[str, Any]:
    versions = await _registry(request, app_state(request).registry.list_adapters)
    return {"data": [v.to_dict() for v in versions]}


@router.post("/adapters", status_code=201)
async def import_adapter(body: ImportAdapter, request: Request) -> dict[str, Any]:
    state = app_state(request)
    version = await _registry(
        request,
        state.registry.import_adapter,
        Path(body.path),
        body.name,
        base=state.base_info,
        max_rank=state.settings.max_lora_rank,
        origin="import",
        notes=body.notes,
        owner=body.owner,
    )
    return version.to_dict()


@router.get("/adapters/{name}")
async def show_adapter(name: str, request: Request) -> dict[str, Any]:
    registry = app_state(request).registry
    versions = await _registry(request, registry.list_adapters, name)
    if not versions:
        await _registry(request, registry.get_version, name)  # raises NotFound
    return {"data": [v.to_dict() for v in versions]}


@router.delete("/adapters/{name}/versions/{version}")
async def delete_version(name: str, version: int, request: Request) -> dict[str, Any]:
    state = app_state(request)
    served = (await _registry(request, state.registry.get_version, name, version)).served_name
    await _registry(request, state.registry.delete_version, name, version)
    await state.lora.unload(served)
    return {"deleted": served}


@router.post("/tenants", status_code=201)
async def create_tenant(body: CreateTenant, request: Request) -> dict[str, Any]:
    registry = app_state(request).registry
    tenant, key = await _registry(request, registry.create_tenant, body.id, body.display_name)
    return {"tenant": tenant.to_dict(), "api_key": key}


@router.get("/tenants")
async def list_tenants(request: Request) -> dict[str, Any]:
    tenants = await _registry(request, app_state(request).registry.list_tenants)
    return {"data": [t.to_dict() for t in tenants]}


@router.get("/tenants/{tenant_id}")
async def show_tenant(tenant_id: str, request: Request) -> dict[str, Any]:
    registry = app_state(request).registry
    tenant = await _registry(request, registry.get_tenant, tenant_id)
    modes = await _registry(request, registry.list_modes, tenant_id)
    return {**tenant.to_dict(), "modes": [m.to_dict() for m in modes]}


@router.delete("/tenants/{tenant_id}")
async def delete_tenant(tenant_id: str, request: Request) -> dict[str, Any]:
    """Delete the tenant (its key stops working at once), then everything its knowledge base
    holds: documents, chunks and ingest jobs, so a tenant created later with the same id
    starts empty."""
    state = app_state(request)
    # NotFound / Conflict / RegistryBusy: nothing is deleted
    await _registry(request, state.registry.delete_tenant, tenant_id)
    try:
        knowledge = await state.knowledge()
        chunks = await state.executors.run("knowledge", knowledge.purge_tenant, tenant_id)
    except Exception as exc:
        log.error("tenant %s deleted, its knowledge not purged: %s", tenant_id, exc)
        raise StoreUnavailable(
            f"tenant {tenant_id!r} is deleted, but its knowledge could not be removed (the "
            "knowledge base is unavailable): once it is back, create the tenant again and "
            "delete it again"
        ) from exc
    return {"deleted": tenant_id, "chunks_deleted": chunks}


@router.post("/tenants/{tenant_id}/rotate-key")
async def rotate_key(tenant_id: str, request: Request) -> dict[str, Any]:
    return {"api_key": await _registry(request, app_state(request).registry.rotate_key, tenant_id)}


def _actor(given: str | None) -> str:
    return f"admin-api:{given}" if given else "admin-api"


@router.put("/tenants/{tenant_id}/modes/{mode}")
async def set_mode(tenant_id: str, mode: str, body: SetMode, request: Request) -> dict[str, Any]:
    state = app_state(request)
    registry = state.registry
    retrieval = normalized(body.retrieval)  # a bad filter is a 400 before anything happens
    await _registry(request, registry.get_tenant, tenant_id)
    forced = await _registry(
        request, check_promotion, registry, tenant_id, mode, body.target, force=body.force
    )
    started = time.perf_counter()
    preloaded = False
    if body.target != "base" and body.preload:
        ref = parse_ref(body.target, param="target")
        adapter = await _registry(request, registry.get_version, ref.name, ref.version)
        if adapter.owner not in (None, tenant_id):  # refuses as the registry does
            await _registry(request, registry.set_mode, tenant_id, mode, body.target)
        try:
            await state.lora.preload(adapter)
            preloaded = True
        except EngineUnavailable:
            preloaded = False  # loaded on first use once the engine is back
    updated = await _registry(
        request,
        registry.set_mode,
        tenant_id,
        mode,
        body.target,
        retrieval=retrieval,
        default=body.default,
        system_prompt=body.system_prompt,
        actor=_actor(body.actor),
        forced=forced,
    )
    return {
        **updated.to_dict(),
        "forced": forced,
        "preloaded": preloaded,
        "seconds": round(time.perf_counter() - started, 4),
    }


@router.delete("/tenants/{tenant_id}/modes/{mode}")
async def remove_mode(tenant_id: str, mode: str, request: Request) -> dict[str, Any]:
    registry = app_state(request).registry
    await _registry(request, registry.remove_mode, tenant_id, mode, actor=_actor(None))
    return {"deleted": mode}


@router.get("/tenants/{tenant_id}/history")
async def tenant_history(tenant_id: str, request: Request, limit: int = 100) -> dict[str, Any]:
    registry = app_state(request).registry
    changes = await _registry(request, registry.mode_history, tenant_id, limit=limit)
    return {"data": [c.to_dict() for c in changes]}


@router.get("/tenants/{tenant_id}/modes/{mode}/history")
async def mode_history(
    tenant_id: str, mode: str, request: Request, limit: int = 100
) -> dict[str, Any]:
    registry = app_state(request).registry
    changes = await _registry(request, registry.mode_history, tenant_id, mode, limit=limit)
    return {"data": [c.to_dict() for c in changes]}


@router.post("/tenants/{tenant_id}/modes/{mode}/rollback")
async def rollback_mode(
    tenant_id: str, mode: str, request: Request, body: Annotated[Actor | None, Body()] = None
) -> dict[str, Any]:
    """Back to the mode's previous target (no gate check: it was live before). Its adapter
    is loaded right after the switch (the first requests may wait for that load)."""
    state = app_state(request)
    registry = state.registry
    before = await _registry(request, registry.get_mode, tenant_id, mode)
    actor = _actor(body.actor if body else None)
    updated = await _registry(request, registry.rollback_mode, tenant_id, mode, actor=actor)
    if updated.adapter is not None:
        adapter = await _registry(request, registry.get_version, updated.adapter, updated.version)
        with contextlib.suppress(EngineUnavailable):  # loaded on first use once it is back
            await state.lora.preload(adapter)
    return {**updated.to_dict(), "rolled_back_from": before.target}


@router.get("/engine")
async def engine_state(request: Request) -> dict[str, Any]:
    state = app_state(request)
    return {
        "engine": state.engine.describe(),
        "loaded": {url: state.lora.loaded(url) for url in state.engine.urls},
    }
