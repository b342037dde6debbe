"""Chat and text completions: validate, route to base or adapter, relay vLLM's answer.

Streaming responses are relayed event by event as they arrive (never buffered); the only
changes made to them are the `model` field, which says the name the client asked for, and in a
retrieval mode the sources (`lorag.retrieval`) on choice 0's finish chunk. A client
that disconnects closes the upstream response, which makes vLLM abort the request (the route
cancels a non-streaming request whose client left, which closes its upstream connection too).

Every request sent carries the caller's `cache_salt` (`service.cache_salt`), replacing any the
client sent: tenants never share vLLM's prefix cache.

Faults: a server that cannot be connected to is reported to the engine (a remote one takes it
out of rotation) and the request goes once to another server, as nothing was sent; a server
lost mid-request is reported too, and the caller gets 503 (mid-stream: an error event in
OpenAI's shape, then the stream ends).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
from fastapi.responses import JSONResponse, StreamingResponse

from lorag.retrieval_policy import RetrievalSettings, narrowed
from service.cache_salt import CacheSalts
from service.caller import Caller
from service.engine import Engine
from service.errors import EngineUnavailable, InvalidRequest, ServerError, to_envelope
from service.handlers import not_found
from service.handlers.instructions import with_instructions
from service.lora import LoraManager
from service.metrics import Metrics
from service.protocol.openai import ChatCompletionRequest, CompletionRequest, ResponsesRequest
from service.replica_choice import ReplicaChooser
from service.retrieval import Augmented, Retriever
from service.routing import Router, Target
from service.upstream import ConnectFailed, Upstream, UpstreamError, sse_events
from service.validation import parse_json, validate

__all__ = ["CLIENT_CLOSED", "CompletionsHandler", "Endpoint", "Prepared"]

log = logging.getLogger(__name__)

Endpoint = Literal["chat", "completions", "responses"]
_PATHS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "responses": "/v1/responses",
}
_REQUEST_TYPES: dict[str, type[ChatCompletionRequest | CompletionRequest | ResponsesRequest]] = {
    "chat": ChatCompletionRequest,
    "completions": CompletionRequest,
    "responses": ResponsesRequest,
}
_DONE = b"data: [DONE]"
_DRAFT_TOKENS = 128
CLIENT_CLOSED = 499
"""The status recorded for a request whose client went away before its answer (nginx's)."""
_R = TypeVar("_R")


@dataclass
class Prepared:
    """A validated request, routed, ready to send."""

    endpoint: Endpoint
    target: Target
    body: dict[str, Any]
    stream: bool
    client_wants_usage: bool
    started: float
    augmented: Augmented | None = None
    tenant: str = ""  # the caller's tenant ("" for an admin key), for the metrics


class CompletionsHandler:
    def __init__(
        self,
        engine: Engine,
        upstream: Upstream,
        router: Router,
        lora: LoraManager,
        metrics: Metrics,
        retriever: Retriever,
        replicas: ReplicaChooser | None = None,
    ):
        self.retriever = retriever
        self.replicas = replicas or ReplicaChooser()
        self.engine = engine
        self.upstream = upstream
        self.router = router
        self.lora = lora
        self.metrics = metrics
        self.salts = CacheSalts(engine.api_key)  # the engine's key: a per-deployment secret

    async def handle(
        self, endpoint: Endpoint, raw: bytes, caller: Caller, request_id: str
    ) -> JSONResponse | StreamingResponse:
        started = time.perf_counter()
        data = parse_json(raw)
        request = validate(_REQUEST_TYPES[endpoint], data)
        target = await self.router.resolve(caller, request.model)
        data.pop("lorag", None)
        body = data  # forwarded as sent: unknown fields reach vLLM untouched, but for the salt
        body["cache_salt"] = self.salts.for_tenant(caller.tenant_id)
        if target.mode is not None and target.mode.system_prompt:
            with_instructions(endpoint, body, target.mode.system_prompt, target.requested)
        wants_usage = False
        override = None
        if isinstance(request, ResponsesRequest):
            _check_stateless(request, target)
            body["store"] = False  # nothing is kept: no tenant can read another's responses
        else:
            wants_usage = bool(request.stream_options and request.stream_options.include_usage)
            if request.stream:
                options = body.get("stream_options") or {}
                body["stream_options"] = {**options, "include_usage": True}
            override = request.lorag.retrieval if request.lorag else None
        prepared = Prepared(
            endpoint=endpoint,
            target=target,
            body=body,
            stream=request.stream,
            client_wants_usage=wants_usage,
            started=started,
            tenant=caller.tenant_id or "",
        )
        settings = target.retrieval
        if settings is not None or override is not None:
            if settings is None:
                raise InvalidRequest("this mode has no retrieval", param="lorag.retrieval")
            if endpoint != "chat":
                raise InvalidRequest(
                    "retrieval modes answer on /v1/chat/completions", param="model"
                )
            await self._retrieve(prepared, caller, narrowed(settings, override), request_id)
            augmented = prepared.augmented
            if augmented is not None and augmented.status == "no_results":
                sentence = augmented.settings.not_found_answer
                if sentence is not None:
                    return self._not_found(prepared, sentence, request_id)
        if request.stream:
            return await self._stream(prepared, request_id)
        return await self._complete(prepared, request_id)

    # --- retrieval ----------------------------------------------------------------------
    async def _retrieve(
        self, prepared: Prepared, caller: Caller, settings: RetrievalSettings, request_id: str
    ) -> None:
        body = prepared.body
        started = time.perf_counter()
        tenant = caller.tenant_id or ""
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        messages = body["messages"]
        augmented = await self.retriever.augment(tenant, settings, messages, max_tokens)
        if settings.two_stage and augmented.status == "ok":
            draft_tokens = min(max_tokens or _DRAFT_TOKENS, _DRAFT_TOKENS)
            draft_body = {
                **body,
                "messages": augmented.messages,
                "stream": False,
                "max_tokens": draft_tokens,
            }
            draft_body.pop("stream_options", None)
            draft_body.pop("max_completion_tokens", None)
            draft_request = Prepared(
                endpoint="chat",
                target=prepared.target,
                body=draft_body,
                stream=False,
                client_wants_usage=False,
                started=prepared.started,
            )
            async with self._destination(draft_request, request_id) as destination:
                result = await destination.post_json()
            draft = result["choices"][0]["message"].get("content") or ""
            augmented = await self.retriever.augment(
                tenant,
                settings,
                messages,
                max_tokens,
                extra_query=draft,
                previous=augmented.kept,
                draft=draft if settings.revise_draft else None,
            )
            augmented.stages, augmented.draft = 2, draft
        body["messages"] = augmented.messages
        augmented.seconds = time.perf_counter() - started
        prepared.augmented = augmented
        self.metrics.retrievals.labels(augmented.status).inc()

    # --- non-streaming ------------------------------------------------------------------
    async def _complete(self, prepared: Prepared, request_id: str) -> JSONResponse:
        async with self._destination(prepared, request_id) as destination:
            result = await destination.post_json()
        augmented = prepared.augmented
        if (
            augmented is not None
            and augmented.settings.on_degenerate == "retry"
            and augmented.check(_answer_of(result)) is not None
        ):
            self.metrics.record_usage(result.get("usage"))  # the first answer's share
            result = await self._ask_strictly(prepared, request_id)
        result["model"] = prepared.target.requested
        if prepared.augmented is not None:
            answer = _answer_of(result)
            result["lorag"] = {"retrieval": prepared.augmented.report(answer)}
        self.metrics.record_usage(result.get("usage"))
        self._observe(prepared, 200)
        return JSONResponse(result, headers=_served_headers(prepared.target))

    def _not_found(
        self, prepared: Prepared, sentence: str, request_id: str
    ) -> JSONResponse | StreamingResponse:
        """The mode's sentence for "no source found", without the model."""
        assert prepared.augmented is not None
        lorag = {"retrieval": prepared.augmented.report(sentence)}
        model = prepared.target.requested
        headers = _served_headers(prepared.target)
        self._observe(prepared, 200)
        if prepared.stream:
            events = not_found.chunks(
                request_id, model, sentence, lorag, prepared.client_wants_usage
            )
            return StreamingResponse(events, media_type="text/event-stream", headers=headers)
        answer = not_found.completion(request_id, model, sentence, lorag)
        return JSONResponse(answer, headers=headers)

    async def _ask_strictly(self, prepared: Prepared, request_id: str) -> dict[str, Any]:
        """Once more, with the same sources and the template's strict instructions (a
        degenerate first answer)."""
        first = prepared.augmented
        assert first is not None and first.asked is not None and first.selection is not None
        max_tokens = prepared.body.get("max_completion_tokens") or prepared.body.get("max_tokens")
        again = await self.retriever.assemble(
            first.settings, first.asked, first.query, first.selection, max_tokens, strict=True
        )
        again.retried, again.stages, again.draft = True, first.stages, first.draft
        again.seconds = first.seconds
        prepared.body["messages"] = again.messages
        prepared.augmented = again
        async with self._destination(prepared, request_id) as destination:
            result: dict[str, Any] = await destination.post_json()
        return result

    # --- streaming ----------------------------------------------------------------------
    async def _stream(self, prepared: Prepared, request_id: str) -> StreamingResponse:
        destination = self._destination(prepared, request_id)
        upstream = await destination.open_stream()  # on failure, nothing is held
        events = self._relay(prepared, upstream, destination)  # it releases the adapter
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                **_served_headers(prepared.target),
            },
        )

    async def _relay(
        self,
        prepared: Prepared,
        upstream: aiohttp.ClientResponse,
        destination: _Destination,
    ) -> AsyncIterator[bytes]:
        old = f'"model":"{destination.model}"'.encode()
        new = f'"model":{json.dumps(prepared.target.requested)}'.encode()
        first = True
        status = 200
        answer: list[str] = []
        try:
            async for event in sse_events(upstream):
                if first:
                    self.metrics.ttft.labels(prepared.endpoint).observe(
                        time.perf_counter() - prepared.started
                    )
                    first = False
                if event.startswith(_DONE):
                    yield event + b"\n\n"
                    continue
                if prepared.augmented is not None:
                    cited = _with_citations(prepared, event, answer)
                    if cited is not None:  # choice 0's last chunk: its answer is complete
                        yield cited
                        continue
                if b'"usage":{' in event and b'"choices":[]' in event:
                    self._record_stream_usage(event)
                    if not prepared.client_wants_usage:
                        continue
                yield event.replace(old, new, 1) + b"\n\n"
        except ServerError as exc:
            status = exc.status
            if isinstance(exc, EngineUnavailable):
                self.engine.report_unreachable(destination.url)
            _, payload = to_envelope(exc)
            log.warning("stream broke: %s", exc.message)
            yield b"data: " + json.dumps(payload).encode() + b"\n\n"
        finally:
            upstream.close()  # mid-stream: drops the connection, so vLLM aborts the request
            destination.release()
            self._observe(prepared, status)

    def _record_stream_usage(self, event: bytes) -> None:
        try:
            usage = json.loads(event.removeprefix(b"data: "))["usage"]
        except (ValueError, KeyError):
            return
        self.metrics.record_usage(usage)

    # --- shared -------------------------------------------------------------------------
    def _destination(self, prepared: Prepared, request_id: str) -> _Destination:
        """Where `prepared` goes: `async with` it to release the adapter when done."""
        return _Destination(self, prepared, request_id)

    def _observe(self, prepared: Prepared, status: int) -> None:
        self.metrics.requests.labels(prepared.endpoint, prepared.target.kind, str(status)).inc()
        self.metrics.latency.labels(prepared.endpoint).observe(
            time.perf_counter() - prepared.started
        )
        served = _served_headers(prepared.target)
        self.metrics.record_served(
            prepared.tenant, served["x-lorag-mode"], served["x-lorag-adapter"], status
        )


class _Destination:
    """A server of the engine and the model name one request is sent to there.

    `post_json` / `open_stream` pick a server, make sure the adapter is loaded there (held in
    use: it stays loaded while the answer runs), and send the request's body with the served
    name as its `model`; they reload once on 404, and go once to another server when the first
    could not be connected to. `release` (or leaving `async with`) frees the adapter.
    """

    def __init__(self, handler: CompletionsHandler, prepared: Prepared, request_id: str):
        self._handler = handler
        self._prepared = prepared
        self._headers = {"x-request-id": request_id}
        self._path = _PATHS[prepared.endpoint]
        self.url = ""
        """The server sent to (set once sent)."""
        self.model = ""
        """The name the engine serves the request's model under (set once sent)."""
        self._held: str | None = None  # the served adapter held in use at `url`
        self._counted = False  # counted in flight at `url` (`ReplicaChooser`)

    async def __aenter__(self) -> _Destination:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._handler.lora.release(self.url, held)
        if self._counted:
            self._counted = False
            self._handler.replicas.finished(self.url)

    async def post_json(self) -> dict[str, Any]:
        return await self._send(self._handler.upstream.post_json)

    async def open_stream(self) -> aiohttp.ClientResponse:
        return await self._send(self._handler.upstream.open_stream)

    async def _send(
        self, call: Callable[[str, dict[str, Any], dict[str, str]], Awaitable[_R]]
    ) -> _R:
        handler, prepared = self._handler, self._prepared
        target = prepared.target
        reloaded = rerouted = False
        holds = None
        if target.adapter is not None:
            name = target.adapter.served_name
            holds = lambda url: name in handler.lora.loaded(url)  # noqa: E731
        while True:
            self.url = handler.replicas.choose(handler.engine.serving_urls(), holds)
            handler.replicas.started(self.url)
            self._counted = True
            sent = False
            try:
                if target.adapter is None:
                    self.model = handler.router.base_name
                else:
                    self.model = await handler.lora.acquire(self.url, target.adapter)
                    self._held = self.model
                # the body as prepared, the served name in place of the requested `model`
                body = {**prepared.body, "model": self.model}
                result = await call(self.url + self._path, body, self._headers)
                sent = True
                return result
            except ConnectFailed as exc:
                handler.engine.report_unreachable(self.url)
                if not rerouted:  # nothing reached the server: safe to send elsewhere
                    rerouted = True
                    log.warning("no connection to a model engine server; trying another")
                    continue
                handler._observe(prepared, exc.status)
                raise
            except UpstreamError as exc:
                if exc.status == 404 and target.adapter is not None and not reloaded:
                    reloaded = True
                    handler.lora.forget(self.url, target.adapter.served_name)
                    continue
                handler._observe(prepared, exc.status)
                if exc.status == 404:  # never reveal the engine's internal names
                    raise ServerError(f"the engine lost model `{target.requested}`") from exc
                raise
            except ServerError as exc:
                if isinstance(exc, EngineUnavailable):  # lost mid-request
                    handler.engine.report_unreachable(self.url)
                    if not rerouted:  # nothing reached the client yet: another server answers
                        rerouted = True
                        log.warning("a model engine server was lost mid-request; trying another")
                        continue
                handler._observe(prepared, exc.status)
                raise
            except asyncio.CancelledError:  # the client went away: the upstream call is closed
                handler._observe(prepared, CLIENT_CLOSED)
                raise
            finally:
                if not sent:  # any failure, a cancelled request included: the adapter is free
                    self.release()


def _check_stateless(request: ResponsesRequest, target: Target) -> None:
    """/v1/responses serves base and adapter modes, statelessly (lorag stores no response)."""
    if target.retrieval is not None:
        raise InvalidRequest(
            f"mode `{target.requested}` answers with retrieval and its sources on "
            "/v1/chat/completions; /v1/responses serves base and adapter modes",
            param="model",
            code="unsupported_endpoint",
        )
    if request.previous_response_id is not None:
        raise InvalidRequest(
            "previous_response_id: lorag stores no responses; send the conversation in `input`",
            param="previous_response_id",
        )
    if request.background:
        raise InvalidRequest(
            "background: lorag stores no responses to come back for; leave it out",
            param="background",
        )


def _served_headers(target: Target) -> dict[str, str]:
    """Which mode and adapter version answered: `x-lorag-mode` (the tenant's mode, or
    `base`) and `x-lorag-adapter` (`name@vN`, or `base`)."""
    return {
        "x-lorag-mode": target.mode.name if target.mode is not None else "base",
        "x-lorag-adapter": target.adapter.served_name if target.adapter is not None else "base",
    }


def _answer_of(result: dict[str, Any]) -> str:
    choices = result.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


def _with_citations(prepared: Prepared, event: bytes, answer: list[str]) -> bytes | None:
    """Adds choice 0's text in `event` to `answer`; when `event` is choice 0's last chunk
    (its `finish_reason` set), returns it with the sources as its `lorag` field.

    The sources ride on a chunk that has `choices`, not on a chunk of their own: clients
    that read `choices[0]` of every chunk survive (only the usage chunk, sent when the
    client asks for it, has none, as at OpenAI). vLLM sends the finish chunk before the
    usage chunk, so the answer is complete there."""
    try:
        chunk = json.loads(event.removeprefix(b"data: "))
        choices = chunk.get("choices") or []
        first = next((c for c in choices if c.get("index", 0) == 0), None)
    except (ValueError, AttributeError):
        return None
    if first is None:
        return None
    answer.append((first.get("delta") or {}).get("content") or "")
    if first.get("finish_reason") is None:
        return None
    assert prepared.augmented is not None
    chunk["model"] = prepared.target.requested
    chunk["lorag"] = {"retrieval": prepared.augmented.report("".join(answer))}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"
