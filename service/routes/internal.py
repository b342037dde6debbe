"""`/internal/adapters/...`: vLLM servers fetch adapter versions from the gateway (replica key).

lorag's resolver plugin on a vLLM server that does not see the adapter store
(`service.engine.lora_resolver`, `LORAG_ADAPTER_DELIVERY=resolver`) asks here for a version's
registry digest and size, then for its two files, and checks them against that digest.

Only the replica key opens it (`service.auth.require_replica`), and only versions the registry
holds are served, whatever their owner (a server serves every tenant). The name is checked by
`lorag.names` and the file must be one of the two artifact files before anything is looked
up; the file is read from the store folder the registry names, so no path is ever built from
the request. Not in the OpenAPI schema: it is no part of the public API.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse

from adapters.artifact_files import ARTIFACT_FILES
from adapters.models import AdapterVersion
from lorag.names import check_adapter_name, check_version
from service.auth import require_replica
from service.errors import NotFound, ServerError
from service.state import app_state

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/internal", dependencies=[Depends(require_replica)], include_in_schema=False
)


async def _version(request: Request, name: str, version: int) -> AdapterVersion:
    """The registry's record of `name@v{version}` (NotFound if it has none), on the
    registry's worker threads."""
    state = app_state(request)
    check_adapter_name(name)
    check_version(version)
    return await state.executors.run("registry", state.registry.get_version, name, version)


@router.get("/adapters/{name}/versions/{version}")
async def describe_version(name: str, version: int, request: Request) -> dict[str, Any]:
    found = await _version(request, name, version)
    return {
        "name": found.name,
        "version": found.version,
        "served_name": found.served_name,
        "sha256": found.sha256,
        "size_bytes": found.size_bytes,
        "files": list(ARTIFACT_FILES),
    }


@router.get("/adapters/{name}/versions/{version}/files/{file}")
async def artifact_file(name: str, version: int, file: str, request: Request) -> FileResponse:
    if file not in ARTIFACT_FILES:
        raise NotFound(f"an adapter artifact has no file {file!r}", param="file")
    found = await _version(request, name, version)
    path = app_state(request).registry.artifact_path(found) / file
    if not path.is_file():
        log.error("the adapter store has lost %s of %s (%s)", file, found.served_name, path)
        raise ServerError(f"the adapter store has lost the files of {found.served_name}")
    return FileResponse(path, media_type="application/octet-stream")
