"""Hostile requests against the gateway in-process (no vLLM): oversized bodies, declared or
chunked, are refused with 413 before they are read whole; deeply nested JSON is a 400; an
uploaded file over the per-file cap is never held in memory whole."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from lorag.settings import BUNDLED_MODEL_NAME, Settings
from service.app import build_app
from service.engine.remote import RemoteEngine

MIB = 2**20
UNUSED_VLLM = "http://127.0.0.1:9"  # the discard port: nothing answers there


def make_app(tmp_path: Path, **fields: object) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path / "data", engine="remote", vllm_urls=[UNUSED_VLLM], **fields
    )
    return build_app(settings, engine=RemoteEngine(settings.vllm_urls))


@dataclass
class Body:
    """A request body streamed in 1 MiB pieces that counts how many the server pulled."""

    total: int
    pulled: int = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        piece = b"[" + b" " * (MIB - 1)
        for _ in range(self.total // MIB):
            self.pulled += 1
            yield piece


async def post(
    app: FastAPI, path: str, body: Body | AsyncIterator[bytes] | bytes | str, **headers: str
) -> httpx.Response:
    """One request, in-process. The lifespan is not run: the remote engine's start is a no-op
    and it would load the embedding model in the background, which no test here needs."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(path, content=body, headers=headers)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    yield make_app(tmp_path)


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_declared_oversized_body_is_refused_before_it_is_read(app: FastAPI) -> None:
    body = Body(80 * MIB)
    response = asyncio.run(
        post(app, "/v1/chat/completions", body, **{"content-length": str(body.total)})
    )
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large" and error["type"] == "invalid_request_error"
    assert "8 MiB" in str(error["message"])
    assert body.pulled == 0
    assert response.headers.get("x-request-id")


def test_a_chunked_oversized_body_is_cut_off_at_the_limit(app: FastAPI) -> None:
    body = Body(80 * MIB)  # no Content-Length: sent chunked
    response = asyncio.run(post(app, "/v1/chat/completions", body))
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"
    assert body.pulled <= 9  # 8 MiB limit, 1 MiB pieces


def test_declared_bodies_are_limited_before_authentication(app: FastAPI) -> None:
    """FastAPI reads and parses a declared body (search, admin) before its dependencies run."""
    for path in ("/v1/knowledge/search", "/admin/tenants"):
        body = Body(40 * MIB)
        response = asyncio.run(post(app, path, body, **{"content-type": "application/json"}))
        assert response.status_code == 413, path
        assert error_of(response)["code"] == "request_too_large"
        assert body.pulled <= 9


def test_uploads_have_their_own_larger_limit(app: FastAPI) -> None:
    multipart = {"content-type": "multipart/form-data; boundary=x"}
    big = Body(70 * MIB)
    response = asyncio.run(
        post(app, "/v1/knowledge/documents", big, **multipart, **{"content-length": "73400320"})
    )
    assert response.status_code == 413
    assert "64 MiB" in str(error_of(response)["message"]) and big.pulled == 0
    # 10 MiB is over the JSON limit but fine for an upload: this one fails on its missing key
    fine = Body(10 * MIB)
    response = asyncio.run(
        post(app, "/v1/knowledge/documents", fine, **multipart, **{"content-length": "10485760"})
    )
    assert response.status_code == 401


def test_small_requests_pass(app: FastAPI) -> None:
    response = asyncio.run(post(app, "/v1/chat/completions", b"{not json"))
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_deeply_nested_json_is_a_400(app: FastAPI) -> None:
    for depth in (100_000, 200):  # past Python's recursion limit, and merely absurd
        nested = "[" * depth + "]" * depth
        for body in (
            f'{{"model": "{BUNDLED_MODEL_NAME}", "messages": [], "extra": {nested}}}',
            f'{{"model": "{BUNDLED_MODEL_NAME}", "messages": [{{"role": "user", '
            f'"content": {nested}}}]}}',
        ):
            response = asyncio.run(post(app, "/v1/chat/completions", body))
            assert response.status_code == 400, (depth, response.text[:200])
            error = error_of(response)
            assert "nested" in str(error["message"]) and error["code"] == "invalid_request"
    response = asyncio.run(post(app, "/v1/completions", "[" * 100_000 + "]" * 100_000))
    assert response.status_code == 400 and "nested" in str(error_of(response)["message"])


def test_an_uploaded_file_over_the_cap_is_never_held_whole(tmp_path: Path) -> None:
    app = make_app(tmp_path, max_upload_bytes=128 * MIB)
    _, key = app.state.lorag.registry.create_tenant("acme")

    async def body() -> AsyncIterator[bytes]:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        piece = b"a" * MIB
        for _ in range(65):  # 65 MiB, over the 64 MiB cap of one file
            yield piece
        yield b"\r\n--x--\r\n"

    headers = {
        "content-type": "multipart/form-data; boundary=x",
        "authorization": f"Bearer {key}",
    }
    tracemalloc.start()
    try:
        response = asyncio.run(post(app, "/v1/knowledge/documents", body(), **headers))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "document_too_large" and error["param"] == "file"
    assert str(error["message"]).startswith("big.txt: ")
    assert peak < 16 * MIB, f"peak {peak / MIB:.0f} MiB"
