"""A vLLM replica's own copies of adapter versions, fetched from the gateway by name.

It runs inside a vLLM server that does not see the gateway's adapter store (another machine,
no shared folder): lorag's resolver plugin (`service.engine.lora_resolver`) asks it for the
folder of `name@vN` when a request names a version that server has not loaded.

Layout under the cache folder (`LORAG_RESOLVER_CACHE`, the replica's own disk):

    sha256/<digest>/adapter_config.json        a complete, verified artifact
    sha256/<digest>/adapter_model.safetensors
    tmp/                                       downloads in progress (same filesystem)

Fetching `name@vN`:
1. `GET {gateway}/internal/adapters/{name}/versions/{N}` with the replica key: the registry's
   digest and size of the version (404: no such version, so not ours to serve: None).
2. `sha256/<digest>/` exists and its files still hash to the digest: it is used as it is, no
   file is downloaded (vLLM resolves again after every unload; the metadata call also makes
   a deleted version unservable at once).
3. Otherwise each file is streamed into a fresh folder under `tmp/`, hashed while written and
   cut off past the registry's size; the digest over the two files (`adapters.artifact_files`)
   must be the registry's, else nothing is kept and the fetch fails. The folder is then
   renamed into place: a folder under `sha256/` is always complete, never half written.

Names are checked as the registry checks them (`lorag.names`) before any URL is built from
them, and the digest the gateway sends before it names a folder: nothing leaves the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.artifact_files import ARTIFACT_FILES, artifact_digest, folder_digest
from lorag.errors import InvalidName, ServerError
from lorag.names import AdapterRef, parse_ref

__all__ = ["AdapterFetchFailed", "ReplicaAdapterCache"]

log = logging.getLogger("vllm.plugins.lorag")  # vLLM's handler writes it to its log

_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_STALE_DOWNLOAD_S = 3600.0
"""A download folder this old was left by a process that died mid-download: removed."""


class AdapterFetchFailed(ServerError, RuntimeError):
    """The version exists but could not be fetched or did not verify. Raised inside vLLM,
    which answers the request that named the version with a 500 carrying this message."""

    code = "adapter_fetch_failed"


class ReplicaAdapterCache:
    """Verified adapter folders on this replica's disk, fetched from the gateway on a miss."""

    def __init__(
        self,
        gateway_url: str,
        key: str,
        cache_dir: Path,
        *,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.gateway_url = gateway_url.rstrip("/")
        self._key = key
        self.cache_dir = Path(cache_dir)
        self._objects = self.cache_dir / "sha256"
        self._staging = self.cache_dir / "tmp"
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)
        self._transport = transport  # tests: the gateway app in-process
        self.downloads = 0
        """Artifacts downloaded by this process (cache hits download nothing)."""

    def prepare(self) -> None:
        """Create the cache folders and drop downloads a dead process left behind."""
        self._objects.mkdir(parents=True, exist_ok=True)
        self._staging.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - _STALE_DOWNLOAD_S
        for leftover in self._staging.iterdir():
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)

    async def folder(self, served_name: str) -> Path | None:
        """The verified folder of `served_name` (`name@vN`); None where it names no version
        the gateway has (vLLM then tries its other resolvers, or answers 404)."""
        try:
            ref = parse_ref(served_name, require_version=True)
        except InvalidName:
            return None  # not a lorag version name (the base model's, a typo): not ours
        async with self._client() as client:
            described = await self._describe(client, ref)
            if described is None:
                return None
            digest, size = described
            target = self._objects / digest
            if target.is_dir():
                if await asyncio.to_thread(_holds, target, digest):
                    return target
                log.warning("cached adapter %s (%s) is damaged: fetching it again", ref, digest)
                await asyncio.to_thread(self._discard, target)
            return await self._download(client, ref, digest, size)

    # --- the gateway ------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.gateway_url,
            headers={"authorization": f"Bearer {self._key}"},
            timeout=self._timeout,
            transport=self._transport,
        )

    def _version_path(self, ref: AdapterRef) -> str:
        return f"/internal/adapters/{ref.name}/versions/{ref.version}"

    async def _describe(self, client: httpx.AsyncClient, ref: AdapterRef) -> tuple[str, int] | None:
        """The registry's (digest, size in bytes) of `ref`; None if it has no such version."""
        answer = await self._get(client, self._version_path(ref), ref)
        if answer.status_code == 404:
            return None
        self._raise_for_status(answer, ref)
        try:
            described: dict[str, Any] = answer.json()
            digest, size = described["sha256"], described["size_bytes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AdapterFetchFailed(f"adapter {ref}: the gateway's answer is not JSON") from exc
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise AdapterFetchFailed(f"adapter {ref}: the gateway sent no valid sha256")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise AdapterFetchFailed(f"adapter {ref}: the gateway sent no valid size")
        return digest, size

    async def _get(self, client: httpx.AsyncClient, path: str, ref: AdapterRef) -> httpx.Response:
        try:
            return await client.get(path)
        except httpx.HTTPError as exc:
            raise AdapterFetchFailed(
                f"adapter {ref}: the gateway at {self.gateway_url} did not answer ({exc!r})"
            ) from exc

    def _raise_for_status(self, answer: httpx.Response, ref: AdapterRef) -> None:
        status = answer.status_code
        if status == 401:
            raise AdapterFetchFailed(
                f"adapter {ref}: the gateway refused this replica's key (LORAG_RESOLVER_KEY "
                "must be the gateway's LORAG_REPLICA_KEY)"
            )
        if status == 403:
            raise AdapterFetchFailed(
                f"adapter {ref}: the gateway's internal adapter endpoint is off (set "
                "LORAG_REPLICA_KEY on the gateway)"
            )
        if status != 200:
            raise AdapterFetchFailed(f"adapter {ref}: the gateway answered HTTP {status}")

    # --- downloading ------------------------------------------------------------------------
    async def _download(
        self, client: httpx.AsyncClient, ref: AdapterRef, digest: str, size: int
    ) -> Path:
        self.prepare()
        staging = Path(tempfile.mkdtemp(prefix=f"{digest[:12]}-", dir=self._staging))
        try:
            file_digests: dict[str, str] = {}
            budget = size
            for name in ARTIFACT_FILES:
                file_digests[name], received = await self._download_file(
                    client, ref, name, staging / name, budget
                )
                budget -= received
            got = artifact_digest(file_digests)
            if got != digest:
                raise AdapterFetchFailed(
                    f"adapter {ref}: the downloaded files hash to {got}, the registry says "
                    f"{digest}: refused, nothing cached"
                )
            target = await asyncio.to_thread(self._publish, staging, digest)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        self.downloads += 1
        log.info("adapter %s fetched from the gateway into %s", ref, target)
        return target

    async def _download_file(
        self, client: httpx.AsyncClient, ref: AdapterRef, name: str, path: Path, budget: int
    ) -> tuple[str, int]:
        """Stream one file into `path`; its sha256 and size. More than `budget` bytes (what
        is left of the registry's size) fails: the gateway cannot fill the replica's disk."""
        hasher = hashlib.sha256()
        received = 0
        url = f"{self._version_path(ref)}/files/{name}"
        try:
            async with client.stream("GET", url) as answer:
                self._raise_for_status(answer, ref)
                with open(path, "xb") as handle:
                    async for chunk in answer.aiter_bytes(_CHUNK):
                        received += len(chunk)
                        if received > budget:
                            raise AdapterFetchFailed(
                                f"adapter {ref}: the gateway sent more than the registry's "
                                "size: refused, nothing cached"
                            )
                        hasher.update(chunk)
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
        except httpx.HTTPError as exc:
            raise AdapterFetchFailed(
                f"adapter {ref}: downloading {name} from the gateway failed ({exc!r})"
            ) from exc
        os.chmod(path, 0o444)
        return hasher.hexdigest(), received

    def _publish(self, staging: Path, digest: str) -> Path:
        """Rename the verified download into place (another process may have done it first:
        then theirs, as complete and verified as ours, stays)."""
        target = self._objects / digest
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
        _fsync_dir(self._objects)
        return target

    def _discard(self, target: Path) -> None:
        """Move a damaged folder out of `sha256/` at once (one rename), then delete it."""
        self._staging.mkdir(parents=True, exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix="rm-", dir=self._staging))
        try:
            target.rename(trash / target.name)
        except FileNotFoundError:
            pass  # discarded concurrently
        finally:
            shutil.rmtree(trash, ignore_errors=True)


def _holds(folder: Path, digest: str) -> bool:
    """Whether `folder` holds exactly the two artifact files, hashing to `digest`."""
    try:
        return folder_digest(folder) == digest
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
