"""A small fake of vLLM's OpenAI server, and a harness running the real gateway against it.

The fake speaks what the gateway uses: `/health`, `/v1/models`, `/v1/chat/completions` and
`/v1/completions` (JSON, or SSE with a usage chunk when asked), `/v1/load_lora_adapter`,
`/v1/unload_lora_adapter` and a one-line `/metrics`. Its answers follow vLLM 0.32's shapes:
compact JSON (`"model":"name"`, no spaces), errors as `{"error": {message, type, param, code}}`
with the HTTP status as `code`.

Like the embedded vLLM it accepts only the gateway: every route but `/health` needs its key
(`VLLM_KEY`, as `Authorization: Bearer`) and answers 401 without it, as vLLM does, so a
gateway that forgets the key fails the fast tests. It checks `cache_salt` as vLLM 0.32 does.

Its reply text is deterministic and says what it got: `"<model> heard: <last user message>"`
(chat) or `"<model> read: <prompt>"` (completions); a stream sends it one word per event. It
records every request (`received`), and `faults` make it misbehave on purpose.

The gateway talks to vLLM with aiohttp, so the fake listens on a real socket: `running_fake`
serves it with uvicorn from a thread of the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

VLLM_KEY = "fake-vllm-key-0123456789"
"""The key fakes accept unless told otherwise (`gateway_settings` gives it to the gateway)."""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any  # the parsed JSON body (None for GET)
    authorization: str | None = None  # the header as sent


@dataclass
class Faults:
    """Ways to misbehave; each applies to generation requests (for `only_model`, if set)."""

    status: int | None = None  # answer with this error status (vLLM's envelope)
    message: str = "fake engine failure"
    delay_s: float = 0.0  # wait before answering
    cut_after: int | None = None  # stream: drop the connection after this many events
    hold: threading.Event | None = None  # stream: after the first event, wait for this
    only_model: str | None = None
    load_status: int | None = None  # /v1/load_lora_adapter answers this error status

    def apply_to(self, model: str) -> bool:
        return self.only_model is None or self.only_model == model


class _CutConnection(Exception):
    """Raised inside a stream: uvicorn then closes the connection mid-response."""


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()  # compact, as vLLM writes it


def _response_object(model: str, text: str, *, stream: bool) -> Response:
    """A Responses API answer: the object, or its created/delta/completed events."""
    message = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }
    done = {"id": "resp-fake-1", "object": "response", "model": model, "status": "completed"}
    done |= {"output": [message], "usage": {"input_tokens": 1, "output_tokens": len(words(text))}}
    if not stream:
        return Response(_json(done), media_type="application/json")
    created = {**done, "status": "in_progress", "output": []}
    events = [
        ("response.created", {"type": "response.created", "response": created}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": text}),
        ("response.completed", {"type": "response.completed", "response": done}),
    ]
    sse = b"".join(
        b"event: %s\ndata: %s\n\n" % (name.encode(), _json(data)) for name, data in events
    )
    return Response(sse, media_type="text/event-stream")


def _error(status: int, message: str, type: str, param: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def words(text: str) -> list[str]:
    """How the fake splits its reply into stream events (they join back to the text)."""
    return re.findall(r"\S+\s*", text)


def reply_text(path: str, body: dict[str, Any]) -> str:
    """What the fake answers to `body` sent to `path`."""
    if path == "/v1/chat/completions":
        users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
        return f"{body['model']} heard: {_text(users[-1]['content']) if users else ''}"
    if path == "/v1/responses":
        return f"{body['model']} answered: {_text(body.get('input') or '')}"
    return f"{body['model']} read: {body.get('prompt')}"


class _RequireKey:
    """vLLM with a key (and lorag's guard): 401 for any route but `/health` without it."""

    def __init__(self, app: Any, fake: FakeVLLM) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        key = self.fake.api_key
        if scope["type"] == "http" and key and scope["path"] != "/health":
            offered = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if offered != f"Bearer {key}":
                with self.fake._lock:
                    self.fake.refused.append(scope["path"])
                answer = JSONResponse({"error": "Unauthorized"}, status_code=401)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _cache_salt_error(body: dict[str, Any]) -> str | None:
    """vLLM 0.32's check of `cache_salt` (None: fine)."""
    salt = body.get("cache_salt")
    if salt is None:
        return None
    if not isinstance(salt, str) or not salt:
        return "Parameter 'cache_salt' must be a non-empty string if provided."
    if len(salt) > 128 or any(char in "@/\\\0" for char in salt):
        return "Parameter 'cache_salt' must be at most 128 characters and must not contain '@'."
    return None


class FakeVLLM:
    def __init__(self, base_name: str, api_key: str | None = VLLM_KEY):
        self.base_name = base_name
        self.api_key = api_key  # None: no key needed
        self.url = ""  # set by `running_fake`
        self.received: list[Received] = []
        self.refused: list[str] = []  # paths of requests refused for a missing or wrong key
        self.adapters: dict[str, str] = {}  # loaded LoRA name -> path
        self.faults = Faults()
        self.running = 0  # generation requests in progress
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/health", self._health),
                Route("/metrics", self._metrics),
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._generate, methods=["POST"]),
                Route("/v1/completions", self._generate, methods=["POST"]),
                Route("/v1/responses", self._generate, methods=["POST"]),
                Route("/v1/load_lora_adapter", self._load, methods=["POST"]),
                Route("/v1/unload_lora_adapter", self._unload, methods=["POST"]),
            ],
            middleware=[Middleware(_RequireKey, fake=self)],
        )

    # --- for tests ----------------------------------------------------------------------
    def reset(self, *, adapters: bool = True) -> None:
        """Forget what was received and the faults (and the loaded adapters, unless asked)."""
        with self._lock:
            self.received.clear()
            self.refused.clear()
            if adapters:
                self.adapters.clear()
            self.faults = Faults()
            self.running = 0

    def forget_adapters(self) -> None:
        """As after a vLLM restart the gateway did not see: every adapter is gone."""
        with self._lock:
            self.adapters.clear()

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests(path)]

    def calls(self) -> list[tuple[str, str]]:
        """(path, model or adapter name) of every POST, in order."""
        found = []
        for r in self.requests():
            if r.method == "POST" and isinstance(r.body, dict):
                found.append((r.path, str(r.body.get("model") or r.body.get("lora_name"))))
        return found

    def unloaded(self) -> list[str]:
        return [b["lora_name"] for b in self.bodies("/v1/unload_lora_adapter")]

    def loaded(self) -> list[str]:
        return [b["lora_name"] for b in self.bodies("/v1/load_lora_adapter")]

    # --- endpoints ----------------------------------------------------------------------
    async def _record(self, request: Request) -> Any:
        body = None
        if request.method == "POST":
            raw = await request.body()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        authorization = request.headers.get("authorization")
        with self._lock:
            self.received.append(Received(request.method, request.url.path, body, authorization))
        return body

    async def _health(self, request: Request) -> Response:
        await self._record(request)
        return Response(status_code=200)

    async def _metrics(self, request: Request) -> Response:
        await self._record(request)
        line = f'vllm:num_requests_running{{model_name="{self.base_name}"}} {self.running}.0\n'
        return PlainTextResponse(line)

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        names = [(self.base_name, None), *((name, self.base_name) for name in self.adapters)]
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "vllm", "parent": parent}
            for name, parent in names
        ]
        return JSONResponse({"object": "list", "data": data})

    async def _load(self, request: Request) -> Response:
        body = await self._record(request)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(
                400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput"
            )
        if self.faults.load_status is not None:
            return _error(self.faults.load_status, self.faults.message, "InternalServerError")
        if name in self.adapters:
            return _error(
                400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput"
            )
        if not (Path(path) / "adapter_config.json").is_file():
            return _error(
                404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError"
            )
        with self._lock:
            self.adapters[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload(self, request: Request) -> Response:
        body = await self._record(request)
        name = body.get("lora_name")
        with self._lock:
            if name not in self.adapters:
                return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
            del self.adapters[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    async def _generate(self, request: Request) -> Response:
        body = await self._record(request)
        path = request.url.path
        model = str(body.get("model"))
        if model != self.base_name and model not in self.adapters:
            return _error(
                404,
                f"The model `{model}` does not exist. Valid aliases: {self.base_name}.",
                "NotFoundError",
                "model",
            )
        salt_error = _cache_salt_error(body)
        if salt_error is not None:
            return _error(400, salt_error, "BadRequestError", "cache_salt")
        faults = self.faults if self.faults.apply_to(model) else Faults()
        if faults.delay_s:
            await asyncio.sleep(faults.delay_s)
        if faults.status is not None:
            return _error(
                faults.status,
                faults.message,
                "InternalServerError" if faults.status >= 500 else "BadRequestError",
            )
        text = reply_text(path, body)
        if path == "/v1/responses":
            return _response_object(model, text, stream=bool(body.get("stream")))
        usage = {
            "prompt_tokens": len(json.dumps(body.get("messages") or body.get("prompt")).split()),
            "completion_tokens": len(words(text)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._events(path, model, text, usage if include_usage else None, faults)
            return StreamingResponse(events, media_type="text/event-stream")
        if path == "/v1/chat/completions":
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            kind = "text_completion"
        answer = {
            "id": "fake-1",
            "object": kind,
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
        return Response(_json(answer), media_type="application/json")

    async def _events(
        self,
        path: str,
        model: str,
        text: str,
        usage: dict[str, int] | None,
        faults: Faults,
    ) -> AsyncIterator[bytes]:
        chat = path == "/v1/chat/completions"
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(piece: str | None, finish: str | None = None, first: bool = False) -> bytes:
            if chat:
                delta = {"role": "assistant", "content": ""} if first else {"content": piece}
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            else:
                choice = {
                    "index": 0,
                    "text": piece or "",
                    "logprobs": None,
                    "finish_reason": finish,
                }
            data = {
                "id": "fake-1",
                "object": kind,
                "created": 0,
                "model": model,
                "choices": [choice],
            }
            return b"data: " + _json(data) + b"\n\n"

        events = [chunk(None, first=True)] if chat else []
        events += [chunk(piece) for piece in words(text)]
        events.append(chunk("", finish="stop"))
        if usage is not None:
            data = {
                "id": "fake-1",
                "object": kind,
                "created": 0,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            events.append(b"data: " + _json(data) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        with self._lock:
            self.running += 1
        try:
            for number, event in enumerate(events):
                if faults.cut_after is not None and number >= faults.cut_after:
                    raise _CutConnection("the fake drops the connection on purpose")
                yield event
                if number == 0 and faults.hold is not None:
                    while not faults.hold.is_set():
                        await asyncio.sleep(0.01)
                await asyncio.sleep(0)
        finally:
            with self._lock:
                self.running -= 1


# --- serving it ---------------------------------------------------------------------------
@contextlib.contextmanager
def serve_in_thread(app: Any, port: int = 0, *, lifespan: str = "off") -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:`port` (0: a free one) from a thread;
    yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        log_config=None,
        log_level="critical",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def running_fake(base_name: str) -> Iterator[FakeVLLM]:
    fake = FakeVLLM(base_name)
    with serve_in_thread(fake.app) as url:
        fake.url = url
        yield fake


# --- the gateway in-process, against the fake ----------------------------------------------
ADMIN_KEY = "fast-tests-admin-key-0123456789"
KNOWLEDGE_OFF = {"qdrant_collection": "knowledge-off!"}
"""Settings that make the knowledge base fail to open at once (an invalid collection name), so
apps that do not test retrieval skip loading the embedding model in their lifespan."""


def gateway_settings(
    data_dir: Path, urls: list[str], base_model_dir: Path, *, knowledge: bool = False, **extra: Any
) -> Any:
    from lorag.settings import Settings

    fields = {
        "data_dir": data_dir,
        "engine": "remote",
        "vllm_urls": urls,
        "vllm_api_key": VLLM_KEY,
        "admin_key": ADMIN_KEY,
        "base_model": str(base_model_dir),
        "model_name": base_model_dir.name,
        **({} if knowledge else KNOWLEDGE_OFF),
    }
    return Settings(**{**fields, **extra})


@contextlib.asynccontextmanager
async def gateway_client(settings: Any, engine: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway app, its lifespan running, behind an in-process httpx client."""
    from service.app import build_app

    app = build_app(settings, engine=engine)  # None: built from `settings`, key included
    async with app.router.lifespan_context(app):
        # raise_app_exceptions=False: a crash is seen as the 500 a client would get
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", timeout=60
        ) as client:
            yield client


async def admin(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    answer = await client.request(method, path, headers={"x-admin-key": ADMIN_KEY}, **kwargs)
    assert answer.status_code in (200, 201, 202), answer.text
    return answer.json()


async def create_tenant(client: httpx.AsyncClient, tenant: str) -> str:
    """A new tenant; its API key."""
    return str((await admin(client, "POST", "/admin/tenants", json={"id": tenant}))["api_key"])


async def set_mode(
    client: httpx.AsyncClient, tenant: str, mode: str, target: str, **extra: Any
) -> Any:
    body = {"target": target, "force": True, **extra}  # the factory's adapters are ungated
    return await admin(client, "PUT", f"/admin/tenants/{tenant}/modes/{mode}", json=body)


def tiny_adapter(base_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """A valid rank-2 peft LoRA artifact on one layer of the base model, written directly
    (no model load: the fake never runs it). Same seed, same bytes."""
    import numpy as np
    from safetensors.numpy import save_file

    from lorag.base_model import BaseModelInfo

    module = "model.layers.0.self_attn.q_proj"
    out_features, in_features = BaseModelInfo.from_folder(base_dir).linear_shapes[module]
    rng = np.random.default_rng(seed)
    prefix = f"base_model.model.{module}"
    tensors = {
        f"{prefix}.lora_A.weight": rng.normal(0, 0.1, (2, in_features)).astype(np.float32),
        f"{prefix}.lora_B.weight": rng.normal(0, 0.1, (out_features, 2)).astype(np.float32),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": 2,
        "lora_alpha": 4,
        "target_modules": ["q_proj"],
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base_dir),
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config))
    return out_dir


async def import_adapter(
    client: httpx.AsyncClient, folder: Path, name: str, owner: str | None = None
) -> str:
    """Import through the admin API; the version's served name (`name@vN`)."""
    body = {"path": str(folder), "name": name, "owner": owner}
    version = await admin(client, "POST", "/admin/adapters", json=body)
    return f"{version['name']}@v{version['version']}"


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def assert_envelope(
    answer: httpx.Response, status: int, *, type: str, param: str | None = None
) -> dict[str, Any]:
    """`answer` is an OpenAI error envelope with this status, type and param; its error."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type
    assert error["param"] == param
    assert error["message"]
    return dict(error)


def sse_data(raw: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [event.removeprefix("data: ") for event in raw.split("\n\n") if event.strip()]


__all__ = [
    "ADMIN_KEY",
    "VLLM_KEY",
    "FakeVLLM",
    "Faults",
    "Received",
    "admin",
    "assert_envelope",
    "bearer",
    "create_tenant",
    "gateway_client",
    "gateway_settings",
    "import_adapter",
    "reply_text",
    "running_fake",
    "serve_in_thread",
    "set_mode",
    "sse_data",
    "tiny_adapter",
    "words",
]
