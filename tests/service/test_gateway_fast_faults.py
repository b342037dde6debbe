"""Holding under faults, fast: the gateway in-process against fake vLLM servers (and, for the
supervisor, a fake vLLM *process*). `test_faults.py` proves the same against the real engine.

- remote engine: a server that refuses connections gets no traffic (requests that hit it are
  sent to another server, none fails), one failing its health probes leaves the rotation, and
  both come back once they answer;
- a non-streaming client that disconnects cancels its upstream request (vLLM stops working
  for nobody);
- embedded engine: a child that exists but no longer answers `/health` (SIGSTOP) is marked
  down, killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from service.app import build_app
from service.engine import EmbeddedEngine, EmbeddedEngineConfig, RemoteEngine, build_engine
from service.errors import EngineUnavailable
from service.upstream import Upstream, sse_events
from tests.conftest import BASE_NAME
from tests.service.fake_vllm import (
    FakeVLLM,
    assert_envelope,
    gateway_client,
    gateway_settings,
    reply_text,
    serve_in_thread,
)

pytestmark = pytest.mark.anyio
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello there, gateway."}]
ASK = {"model": BASE_NAME, "messages": HELLO}
FAST_PROBES = {"vllm_probe_interval_s": 0.1, "vllm_probe_timeout_s": 1.0, "vllm_probe_failures": 2}


class WatchfulFake(FakeVLLM):
    """A fake vLLM that can fail its health probes, and hold non-streaming requests while it
    watches whether the caller is still connected."""

    def __init__(self, base_name: str) -> None:
        super().__init__(base_name)
        self.healthy = True
        self.hold_s = 0.0  # hold each non-streaming generation this long (0: answer at once)
        self.holding = threading.Event()  # a held request arrived
        self.abandoned = threading.Event()  # its caller closed the connection while held

    async def _health(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=200 if self.healthy else 503)

    async def _generate(self, request: Request) -> Response:
        if not self.hold_s:
            return await super()._generate(request)
        body = await self._record(request)
        self.holding.set()
        deadline = time.monotonic() + self.hold_s
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                self.abandoned.set()
                return Response(status_code=499)
            await asyncio.sleep(0.02)
        answer = {"choices": [{"message": {"content": reply_text(request.url.path, body)}}]}
        return Response(json.dumps(answer), media_type="application/json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fake_on(port: int = 0) -> Iterator[WatchfulFake]:
    fake = WatchfulFake(BASE_NAME)
    with serve_in_thread(fake.app, port) as url:
        fake.url = url
        yield fake


async def eventually(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def chats(fake: FakeVLLM) -> int:
    return len(fake.requests(CHAT))


# --- remote engine: failover ---------------------------------------------------------------
async def test_a_dead_server_fails_no_request_and_gets_traffic_once_back(
    tmp_path: Path, base_model_dir: Path
) -> None:
    dead_port = free_port()  # nothing listens there (yet)
    with fake_on() as alive:
        urls = [f"http://127.0.0.1:{dead_port}", alive.url]
        settings = gateway_settings(tmp_path / "data", urls, base_model_dir, **FAST_PROBES)
        engine = build_engine(settings)
        assert isinstance(engine, RemoteEngine)
        async with gateway_client(settings, engine=engine) as client:
            answers = await asyncio.gather(*(client.post(CHAT, json=ASK) for _ in range(10)))
            answers += [await client.post(CHAT, json=ASK) for _ in range(10)]
            assert [a.status_code for a in answers] == [200] * 20
            assert chats(alive) == 20
            assert engine.urls == [alive.url]
            assert engine.describe()["down"] == [urls[0]]
            generation = engine.generation

            with fake_on(dead_port) as revived:
                await eventually(lambda: len(engine.urls) == 2)
                back = [await client.post(CHAT, json=ASK) for _ in range(10)]
        assert [a.status_code for a in back] == [200] * 10
        assert chats(revived) == 5 and chats(alive) == 25  # round-robin again
        assert engine.generation > generation  # adapters are loaded again on the revived one


async def test_a_server_failing_its_probes_leaves_the_rotation_until_it_answers(
    tmp_path: Path, base_model_dir: Path
) -> None:
    with fake_on() as first, fake_on() as second:
        urls = [first.url, second.url]
        settings = gateway_settings(tmp_path / "data", urls, base_model_dir, **FAST_PROBES)
        engine = build_engine(settings)
        async with gateway_client(settings, engine=engine) as client:
            second.healthy = False
            await eventually(lambda: engine.urls == [first.url])
            sick = [await client.post(CHAT, json=ASK) for _ in range(6)]
            second.healthy = True
            await eventually(lambda: len(engine.urls) == 2)
            well = [await client.post(CHAT, json=ASK) for _ in range(6)]
    assert [a.status_code for a in sick + well] == [200] * 12
    assert chats(first) == 6 + 3 and chats(second) == 3


async def test_every_server_down_is_503_at_once(tmp_path: Path, base_model_dir: Path) -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    settings = gateway_settings(tmp_path / "data", urls, base_model_dir)
    async with gateway_client(settings) as client:
        first = await client.post(CHAT, json=ASK)  # finds both dead
        started = time.monotonic()
        second = await client.post(CHAT, json={**ASK, "stream": True})
        took = time.monotonic() - started
    for answer in (first, second):
        error = assert_envelope(answer, 503, type="service_unavailable")
        assert error["code"] == "engine_unavailable"
        assert "127.0.0.1" not in error["message"]
    assert took < 1.0


# --- a stream whose engine dies --------------------------------------------------------------
async def test_events_that_arrived_before_the_engine_died_are_still_relayed() -> None:
    """Everything, the broken connection included, is in before the relay reads: aiohttp
    raises the break before handing out the data it holds; none of it may be lost."""
    events = [b'data: {"n":%d}' % number for number in range(3)]
    chunked = b"".join(b"%x\r\n%s\n\n\r\n" % (len(e) + 2, e) for e in events)

    async def dying_engine(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        writer.write(head + b"transfer-encoding: chunked\r\n\r\n" + chunked)
        await writer.drain()
        writer.close()  # no last chunk: it died mid-stream

    server = await asyncio.start_server(dying_engine, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream(10)
    got: list[bytes] = []
    try:
        response = await upstream.open_stream(f"http://127.0.0.1:{port}/v1/completions", {}, {})
        await asyncio.sleep(0.3)
        with pytest.raises(EngineUnavailable) as caught:
            async for event in sse_events(response):
                got.append(event)
        response.close()
    finally:
        await upstream.close()
        server.close()
        await server.wait_closed()
    assert got == events
    assert "127.0.0.1" not in caught.value.message


# --- a non-streaming client that leaves ----------------------------------------------------
@contextlib.asynccontextmanager
async def gateway_over_tcp(settings: Any) -> AsyncIterator[str]:
    """The real gateway served by uvicorn (its lifespan running): a client's disconnect is a
    real closed connection, as in production (an in-process transport cannot show it)."""
    app = build_app(settings)
    with serve_in_thread(app, lifespan="on") as url:
        yield url


async def test_a_client_that_leaves_cancels_its_upstream_request(
    tmp_path: Path, base_model_dir: Path
) -> None:
    with fake_on() as fake:
        settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
        async with gateway_over_tcp(settings) as url, httpx.AsyncClient(base_url=url) as client:
            fake.hold_s = 30.0
            asking = asyncio.create_task(client.post(CHAT, json=ASK, timeout=60))
            await eventually(fake.holding.is_set)
            asking.cancel()  # the client goes away: its connection closes
            with contextlib.suppress(asyncio.CancelledError):
                await asking
            await eventually(fake.abandoned.is_set, timeout_s=5)
            fake.hold_s = 0.0
            metrics = (await client.get("/metrics")).text
            after = await client.post(CHAT, json=ASK, timeout=30)
    assert 'lorag_requests_total{endpoint="chat",kind="base",status="499"} 1.0' in metrics
    assert after.status_code == 200


async def test_a_client_that_stays_gets_its_held_answer(
    tmp_path: Path, base_model_dir: Path
) -> None:
    with fake_on() as fake:
        settings = gateway_settings(tmp_path / "data", [fake.url], base_model_dir)
        async with gateway_over_tcp(settings) as url, httpx.AsyncClient(base_url=url) as client:
            fake.hold_s = 0.5
            answer = await client.post(CHAT, json=ASK, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == reply_text(CHAT, ASK)
    assert not fake.abandoned.is_set()


# --- embedded engine: a hung child ----------------------------------------------------------
FAKE_VLLM_PROCESS = """\
import http.server, sys

port = int(sys.argv[sys.argv.index("--port") + 1])


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


@pytest.fixture
def fake_vllm_python(tmp_path: Path) -> Path:
    """An executable that stands in for `python -m vllm...`: it serves `/health` on `--port`."""
    script = tmp_path / "fake-vllm-python"
    script.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_VLLM_PROCESS))
    script.chmod(0o755)
    return script


def fake_embedded_engine(tmp_path: Path, fake_vllm_python: Path) -> EmbeddedEngine:
    """The embedded engine's supervisor around the stand-in process, probing fast."""
    config = EmbeddedEngineConfig(
        model="fake",
        served_name=BASE_NAME,
        log_path=tmp_path / "vllm.log",
        start_timeout_s=20,
        python=str(fake_vllm_python),
        probe_interval_s=0.2,
        probe_timeout_s=0.5,
        probe_failures=2,
    )
    return EmbeddedEngine(config)


async def test_a_hung_embedded_engine_is_marked_down_killed_and_restarted(
    tmp_path: Path, fake_vllm_python: Path
) -> None:
    engine = fake_embedded_engine(tmp_path, fake_vllm_python)
    await engine.start()
    pid = None
    try:
        await eventually(lambda: engine.describe()["up"], timeout_s=20)
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # exists, answers nothing
        stopped = time.monotonic()
        await eventually(lambda: not engine.describe()["up"], timeout_s=10)
        detected = time.monotonic() - stopped
        with pytest.raises(EngineUnavailable):
            engine.serving_urls()
        await eventually(lambda: engine.describe()["up"], timeout_s=20)
        assert engine.pid != pid
        assert engine.describe()["restarts"] == 1
        assert engine.generation == 2
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{engine.serving_urls()[0]}/health")).status_code == 200
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await engine.stop()
    assert detected < 5


async def test_an_embedded_engine_that_dies_is_restarted(
    tmp_path: Path, fake_vllm_python: Path
) -> None:
    """The crash path (the real vLLM's restart is tested once, hung: test_faults.py)."""
    engine = fake_embedded_engine(tmp_path, fake_vllm_python)
    await engine.start()
    try:
        await eventually(lambda: engine.describe()["up"], timeout_s=20)
        pid = engine.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: not engine.describe()["up"], timeout_s=10)
        with pytest.raises(EngineUnavailable):
            engine.serving_urls()
        await eventually(lambda: engine.describe()["up"], timeout_s=20)
        assert engine.pid != pid
        assert engine.describe()["restarts"] == 1
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{engine.serving_urls()[0]}/health")).status_code == 200
    finally:
        await engine.stop()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
