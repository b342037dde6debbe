"""Fuzzing the gateway's HTTP API with schemathesis, in-process (no vLLM, no model, ~a minute).

Every operation of the gateway's OpenAPI schema is called with cases generated from the schema
(valid ones and, where the schema allows it, invalid ones), by three callers: anonymous, a
tenant (`lrg-` key) and an operator (admin key). The app runs in this process behind
schemathesis' ASGI client, against the fake vLLM of `fake_vllm.py`, with the knowledge base
off (an invalid collection name: it fails at once, so knowledge routes answer 503
`store_unavailable`, a documented answer).

Routes that read their body themselves (chat, completions, knowledge ingest) declare none in
the schema; the fuzzed copy of the schema gives them their protocol models, so the generated
bodies reach the handlers. Invariants checked on every answer:

- no 5xx, except the documented 503 `store_unavailable` where the knowledge base is used;
- every error (4xx and 5xx) is OpenAI's envelope `{"error": {message, type, param, code}}`;
- no error message names the server's folders (data dir, repository, /tmp), the engine's
  address or a key, unless the request itself carried that text; for callers without the
  admin key, no answer at all does (operators are shown the engine on purpose);
- callers without the admin key never succeed on `/admin/...`, callers without a tenant key
  never succeed on `/v1/knowledge/...`.

Generated names are often swapped for known ones (the tenant's modes, an existing tenant and
adapter) so that cases get past the lookups into the handlers. `test_edge_values` sends values
the generators rarely draw. Bounded and repeatable: a few examples per (route, caller),
derandomized, no example database, no shrinking. A new route must be added to `ROUTES`
(`test_every_route_is_fuzzed` fails until it is).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet
from schemathesis.python.asgi import shutdown_lifespans

from ingest.embedding import BUNDLED_MODEL_NAME
from lorag.retrieval_policy import normalized
from service.app import build_app
from service.protocol.knowledge import IngestRequest
from service.protocol.openai import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ResponsesRequest,
)
from tests.conftest import BASE_NAME, REPO
from tests.service.fake_vllm import ADMIN_KEY, gateway_settings, running_fake, tiny_adapter

TENANT = "fuzz-tenant-q7"  # its key is the tenant caller's; the fuzzed routes never name it
OTHER = "fuzz-other"  # a second tenant, the one the admin routes are steered to
MODES = ("plain", "rag", "support")
EXAMPLES = 8  # per (route, caller): valid cases and, where the schema allows, invalid ones
BODY_EXAMPLES = 24  # for routes with a request body
REFUSED_EXAMPLES = 4  # for callers the route refuses (no admin key on /admin/...)
# Known names the generated cases are often steered to, so handlers go past their lookups
# (generators merge an enum into a plain string type, so the schema cannot ask for them).
KNOWN = {
    "model": [BASE_NAME, *MODES, BUNDLED_MODEL_NAME],
    "tenant_id": [OTHER],
    "mode": list(MODES),
    "name": ["support"],
}

ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/admin/adapters"),
    ("POST", "/admin/adapters"),
    ("GET", "/admin/adapters/{name}"),
    ("DELETE", "/admin/adapters/{name}/versions/{version}"),
    ("GET", "/admin/tenants"),
    ("POST", "/admin/tenants"),
    ("GET", "/admin/tenants/{tenant_id}"),
    ("DELETE", "/admin/tenants/{tenant_id}"),
    ("POST", "/admin/tenants/{tenant_id}/rotate-key"),
    ("PUT", "/admin/tenants/{tenant_id}/modes/{mode}"),
    ("DELETE", "/admin/tenants/{tenant_id}/modes/{mode}"),
    ("GET", "/admin/tenants/{tenant_id}/history"),
    ("GET", "/admin/tenants/{tenant_id}/modes/{mode}/history"),
    ("POST", "/admin/tenants/{tenant_id}/modes/{mode}/rollback"),
    ("GET", "/admin/engine"),
    ("GET", "/v1/knowledge/documents"),
    ("POST", "/v1/knowledge/documents"),
    ("GET", "/v1/knowledge/jobs/{job_id}"),
    ("DELETE", "/v1/knowledge/documents/{doc_id}"),
    ("POST", "/v1/knowledge/search"),
    ("POST", "/admin/knowledge/{tenant_id}/documents"),
    ("GET", "/admin/knowledge/{tenant_id}/jobs/{job_id}"),
]
CALLERS = ("anonymous", "tenant", "admin")

# Routes whose handlers use the knowledge base (off here): 503 store_unavailable is their
# documented answer. Chat and completions use it in a mode with retrieval (`rag`); embeddings
# come from its embedding model, opened with it.
USES_KNOWLEDGE = {
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("DELETE", "/admin/tenants/{tenant_id}"),
    *((method, path) for method, path in ROUTES if "/knowledge/" in path),
}

# Bodies the handlers read themselves (raw JSON or multipart), declared for the fuzzed schema.
RAW_BODIES: dict[tuple[str, str], list[type]] = {
    ("POST", "/v1/chat/completions"): [ChatCompletionRequest],
    ("POST", "/v1/completions"): [CompletionRequest],
    ("POST", "/v1/responses"): [ResponsesRequest],
    ("POST", "/v1/embeddings"): [EmbeddingRequest],
    ("POST", "/v1/knowledge/documents"): [IngestRequest],
    ("POST", "/admin/knowledge/{tenant_id}/documents"): [IngestRequest],
}
UPLOADS = {("POST", "/v1/knowledge/documents"), ("POST", "/admin/knowledge/{tenant_id}/documents")}


@dataclass
class Fuzzed:
    schema: Any  # schemathesis' OpenApiSchema, bound to the in-process app
    served: dict[str, Any]  # the schema the app serves at /openapi.json
    headers: dict[str, dict[str, str]]  # caller -> headers
    secrets: list[str]  # text no error message may contain


def _with_raw_bodies(served: dict[str, Any]) -> dict[str, Any]:
    """A copy of the served schema in which the raw-body routes declare their bodies."""
    schema = copy.deepcopy(served)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for (method, path), models in RAW_BODIES.items():
        content: dict[str, Any] = {}
        for model in models:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
            content["application/json"] = {
                "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
            }
        if (method, path) in UPLOADS:
            upload = {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "doc_id": {"type": "string"},
                },
                "required": ["file"],
            }
            content["multipart/form-data"] = {"schema": upload}
        operation = schema["paths"][path][method.lower()]
        operation["requestBody"] = {"required": True, "content": content}
    return schema


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp("fuzz")
    with running_fake(BASE_NAME) as fake:
        settings_ = gateway_settings(root / "data", [fake.url], base_model_dir)
        app = build_app(settings_)
        state = app.state.lorag
        _, tenant_key = state.registry.create_tenant(TENANT)
        state.registry.create_tenant(OTHER)
        adapter = state.registry.import_adapter(
            tiny_adapter(base_model_dir, root / "adapter"),
            "support",
            base=state.base_info,
            max_rank=settings_.max_lora_rank,
            owner=TENANT,
        )
        state.registry.set_mode(TENANT, "plain", "base", default=True)
        state.registry.set_mode(TENANT, "rag", "base", retrieval=normalized({"top_k": 2}))
        state.registry.set_mode(TENANT, "support", adapter.served_name)
        try:
            # the app's own schema, fetched in-process (this starts its lifespan)
            loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
            served = dict(loaded.raw_schema)
            schema = schemathesis.openapi.from_dict(_with_raw_bodies(served))
            schema.app = app  # calls go to the app in-process, as `from_asgi` binds them
            engine_address = fake.url.removeprefix("http://")
            yield Fuzzed(
                schema=schema,
                served=served,
                headers={
                    "anonymous": {},
                    "tenant": {"authorization": f"Bearer {tenant_key}"},
                    "admin": {"x-admin-key": ADMIN_KEY},
                },
                secrets=[
                    str(root),
                    str(REPO),
                    str(REPO.resolve()),
                    str((REPO / ".lorag").resolve()),
                    str(base_model_dir),
                    "/tmp/",
                    engine_address,
                    "127.0.0.1",
                    ADMIN_KEY,
                    tenant_key,
                ],
            )
        finally:
            shutdown_lifespans()  # the app's lifespan: engine, upstream, knowledge closed


def test_every_route_is_fuzzed(fuzzed: Fuzzed) -> None:
    served = {
        (method.upper(), path)
        for path, operations in fuzzed.served["paths"].items()
        for method in operations
    }
    assert served == set(ROUTES)


def _request_text(case: Any) -> str:
    """Everything the request carried, as text (an error may echo the caller's own input)."""
    parts = [case.path, json.dumps(case.path_parameters or {}, default=str)]
    parts.append(json.dumps(case.query or {}, default=str))
    body = case.body
    if isinstance(body, bytes):
        parts.append(body.decode("utf-8", "replace"))
    elif body is not None and not isinstance(body, NotSet):
        parts.append(json.dumps(body, default=repr))
    return "\n".join(parts)


def check_answer(fuzzed: Fuzzed, route: tuple[str, str], who: str, case: Any, answer: Any) -> None:
    status = answer.status_code
    sent = f"{case.method} {case.formatted_path} as {who}"
    if who != "admin":  # operators may see the engine's address and folders, nobody else
        request_text = _request_text(case)
        for secret in fuzzed.secrets:
            if secret not in request_text:
                assert secret not in answer.text, f"{sent}: {secret!r} in {answer.text[:300]!r}"
    if status >= 400:
        try:
            body = answer.json()
        except ValueError:
            pytest.fail(f"{sent}: {status} not JSON: {answer.text[:300]!r}")
        assert isinstance(body, dict), f"{sent}: {status} {body!r}"
        assert set(body) == {"error"}, f"{sent}: {status} {body!r}"
        error = body["error"]
        assert isinstance(error, dict), f"{sent}: {status} {body!r}"
        assert set(error) == {"message", "type", "param", "code"}, f"{sent}: {error!r}"
        assert isinstance(error["message"], str), f"{sent}: {error!r}"
        assert error["message"], f"{sent}: {error!r}"
        assert isinstance(error["type"], str), f"{sent}: {error!r}"
        assert error["param"] is None or isinstance(error["param"], str), f"{sent}: {error!r}"
        assert error["code"] is None or isinstance(error["code"], str), f"{sent}: {error!r}"
        request_text = _request_text(case)
        for secret in fuzzed.secrets:
            if secret not in request_text:
                assert secret not in json.dumps(error), f"{sent}: {secret!r} in {error!r}"
        if status >= 500:
            documented = status == 503 and error["code"] == "store_unavailable"
            assert documented and route in USES_KNOWLEDGE, f"{sent}: {status} {error!r}"
    if not allowed(route[1], who):
        assert status >= 400, f"{sent}: {status} for a caller without the right key"


def allowed(path: str, who: str) -> bool:
    """Whether `who` may call `path` at all."""
    if path.startswith("/admin/"):
        return who == "admin"
    if path.startswith("/v1/knowledge/"):
        return who == "tenant"
    return True


def steer(case: Any, pick: int) -> None:
    """Half the time (pick >= 4), put known names in the case's path and body."""
    if pick < 4:
        return
    for name in case.path_parameters or {}:
        if name in KNOWN:
            case.path_parameters[name] = KNOWN[name][pick % len(KNOWN[name])]
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = KNOWN["model"][pick % len(KNOWN["model"])]


def within_the_fake(case: Any) -> None:
    """The fake vLLM needs what real vLLM validates itself: a user message without `content`
    (which the gateway lets through, as an assistant message may have none) makes the fake
    crash (`reply_text` reads `content`) where vLLM answers 400. Such messages get ""."""
    messages = case.body.get("messages") if isinstance(case.body, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            message.setdefault("content", "")


def _strategy(operation: Any) -> st.SearchStrategy[Any]:
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    has_input = operation.path_parameters or operation.query or operation.body
    if not has_input:
        return positive
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_fuzz(fuzzed: Fuzzed, method: str, path: str, who: str) -> None:
    headers = fuzzed.headers[who]
    operation = fuzzed.schema[path][method]
    examples = BODY_EXAMPLES if operation.body else EXAMPLES
    if not allowed(path, who):
        examples = min(examples, REFUSED_EXAMPLES)
    if not (operation.path_parameters or operation.query or operation.body):
        examples = 1  # nothing to vary

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded even when failing
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation), pick=st.integers(0, 7))
    def run(case: Any, pick: int) -> None:
        steer(case, pick)
        within_the_fake(case)
        answer = case.call(headers=headers, timeout=30)
        check_answer(fuzzed, (method, path), who, case, answer)

    run()


# Edge values the generators rarely draw, as explicit cases of the same schema and invariants.
EDGE_CASES = [
    pytest.param(
        "DELETE",
        "/admin/adapters/{name}/versions/{version}",
        {"name": "support", "version": 2**63},
        id="adapter version past SQLite's INTEGER",
    ),
    pytest.param(
        "DELETE",
        "/admin/adapters/{name}/versions/{version}",
        {"name": "support", "version": 2**63 - 1},
        id="largest adapter version",
    ),
    pytest.param("GET", "/admin/tenants/{tenant_id}", {"tenant_id": "\x00"}, id="NUL tenant id"),
    pytest.param("GET", "/admin/adapters/{name}", {"name": "../" * 8}, id="adapter name ../"),
    pytest.param(
        "DELETE",
        "/admin/tenants/{tenant_id}/modes/{mode}",
        {"tenant_id": OTHER, "mode": "m" * 5000},
        id="long mode name",
    ),
    pytest.param("GET", "/v1/knowledge/jobs/{job_id}", {"job_id": "\x00"}, id="NUL job id"),
]


@pytest.mark.parametrize(("method", "path", "parameters"), EDGE_CASES)
def test_edge_values(fuzzed: Fuzzed, method: str, path: str, parameters: dict[str, Any]) -> None:
    case = fuzzed.schema[path][method].Case(path_parameters=parameters)
    who = "tenant" if path.startswith("/v1/") else "admin"
    answer = case.call(headers=fuzzed.headers[who], timeout=30)
    check_answer(fuzzed, (method, path), who, case, answer)
