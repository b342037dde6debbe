"""All of lorag's configuration: one `Settings`, read once at start, then frozen.

Every field is an environment variable with the `LORAG_` prefix (`LORAG_DATA_DIR`, ...); the
names are flat, the fields are grouped in sections (one mixin class each) that `Settings`
combines. Nothing else in lorag reads the environment: code receives the `Settings` object or
the values it needs (`child_environment` builds a child process's environment from ours). The
one exception runs outside lorag's processes: the resolver plugin inside a vLLM server reads
its own `LORAG_RESOLVER_*` variables there (`service.engine.lora_resolver`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = [
    "BUNDLED_MODEL_NAME",
    "MIN_ADMIN_KEY_CHARS",
    "MIN_REPLICA_KEY_CHARS",
    "SECRET_VARIABLES",
    "EngineSettings",
    "GatewaySettings",
    "KnowledgeSettings",
    "LimitsSettings",
    "ModelSettings",
    "PathsSettings",
    "Settings",
    "child_environment",
    "settings_error_lines",
]

BUNDLED_MODEL_NAME = "smollm2-135m-instruct"
DEFAULT_MAX_MODEL_LEN = 2048
MIN_ADMIN_KEY_CHARS = 16
MIN_REPLICA_KEY_CHARS = 32
"""Replicas hold their key in a file or variable, nobody types it: it may as well be long."""


def _split_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _blank_secret_is_none(value: object) -> object:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str) and not value.strip():
        return None
    return value


class PathsSettings(BaseModel):
    """Where state lives."""

    data_dir: Path = Field(Path(".lorag"), description="Models, adapters, registry, knowledge.")
    registry_url: SecretStr | None = Field(
        None,
        description="The registry in a PostgreSQL database that several gateways share "
        "(`postgresql://user:password@host:5432/lorag`); unset = the SQLite file in the data "
        "dir. Every gateway needs the same adapter store contents (LORAG_DATA_DIR/adapters).",
    )

    @field_validator("registry_url", mode="before")
    @classmethod
    def _postgresql_url(cls, value: object) -> object:
        """Blank = unset; otherwise a `postgresql://` URL (the value, which may hold a
        password, is never repeated in the error)."""
        value = _blank_secret_is_none(value)
        if isinstance(value, str):
            value = value.strip()
            scheme = value.partition("://")[0].lower() if "://" in value else ""
            if scheme not in ("postgresql", "postgres"):
                found = f"a {scheme}:// URL" if scheme.isalnum() else "no URL"
                raise ValueError(
                    f"LORAG_REGISTRY_URL must be a postgresql://user:password@host:port/database "
                    f"URL (got {found}), or unset for the SQLite registry in LORAG_DATA_DIR"
                )
        return value

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def knowledge_dir(self) -> Path:
        return self.data_dir / "knowledge"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"


class ModelSettings(BaseModel):
    """The base model."""

    base_model: str | None = Field(
        None, description="HF model folder or hub id; unset = the bundled SmolLM2-135M-Instruct."
    )
    model_name: str | None = Field(
        None, description="Name clients use for the base model; default: the folder's name."
    )


class GatewaySettings(BaseModel):
    """The HTTP gateway: address, keys, logging and its worker pools."""

    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, description="Port the gateway listens on.")
    metrics_label_values: int = Field(
        100,
        ge=1,
        description="Distinct tenants, modes or adapter versions the metrics name; "
        "further ones are counted as `other`.",
    )
    request_timeout_s: float = Field(300.0, description="Upstream (vLLM) request timeout.")
    admin_key: SecretStr | None = Field(
        None,
        description=f"Key for /admin (at least {MIN_ADMIN_KEY_CHARS} characters); unset or "
        "empty = admin off.",
    )
    require_api_key: bool = Field(
        False, description="Refuse requests without a tenant key (else: base model only)."
    )
    log_level: str = Field("info", description="Log level of the gateway (uvicorn's names).")
    lookup_threads: int = Field(
        8,
        ge=1,
        description="Worker threads for each request's registry reads (its key's tenant, its "
        "model's mode): with a PostgreSQL registry each is a network round trip, kept off the "
        "event loop.",
    )
    retrieval_threads: int = Field(
        4,
        ge=1,
        description="Worker threads for searches (the search endpoint and the RAG step): a "
        "pool of their own, so that slow uploads or deletes never hold retrieval up.",
    )
    knowledge_threads: int = Field(
        4,
        ge=1,
        description="Worker threads for knowledge writes: ingest submissions, upload parsing, "
        "document listing and deletes, tenant purges (beyond them, such calls queue).",
    )
    registry_threads: int = Field(
        2,
        ge=1,
        description="Worker threads for the admin API's registry calls (which may wait for "
        "another process's write lock).",
    )
    registry_busy_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long a request waits for the registry's write lock held by another "
        "process (a CLI command, another gateway) before it is answered 503; the CLI waits "
        "30 s.",
    )

    @field_validator("admin_key", mode="before")
    @classmethod
    def _blank_admin_key_is_unset(cls, value: object) -> object:
        """`LORAG_ADMIN_KEY=` (empty or blanks) means no admin key, exactly like unset."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if len(value) < MIN_ADMIN_KEY_CHARS:
                raise ValueError(
                    f"LORAG_ADMIN_KEY is too short: use at least {MIN_ADMIN_KEY_CHARS} "
                    "characters (e.g. `openssl rand -hex 24`), or leave it unset to turn "
                    "the admin API off"
                )
        return value


class EngineSettings(BaseModel):
    """The engine (vLLM): embedded subprocess or remote servers."""

    engine: Literal["embedded", "remote"] = Field(
        "embedded",
        description="'embedded' = the gateway starts vLLM itself; 'remote' = LORAG_VLLM_URLS.",
    )
    vllm_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Remote engine: comma-separated vLLM base URLs."
    )
    adapter_delivery: Literal["path", "resolver"] = Field(
        "path",
        description="How a vLLM server gets an adapter version's files. 'path': the gateway "
        "sends the version's folder in its store (LORAG_DATA_DIR/adapters), which every server "
        "must see at that same path (the embedded engine always does; a remote server that "
        "cannot is an error naming it). 'resolver': the gateway names the version only, and "
        "lorag's resolver plugin on each remote server fetches it from the gateway's "
        "/internal/adapters endpoint (needs LORAG_REPLICA_KEY; README: Remote vLLM servers).",
    )
    replica_key: SecretStr | None = Field(
        None,
        description="The key vLLM servers' resolver plugin sends to fetch adapter files from "
        f"the gateway's /internal/adapters endpoint (at least {MIN_REPLICA_KEY_CHARS} "
        "characters; only the replicas hold it); unset or empty = that endpoint is off.",
    )
    routing: Literal["adapter-aware", "round-robin"] = Field(
        "adapter-aware",
        description="Remote engine with several vLLM servers: send a request to a server that "
        "already holds its adapter (then the least busy), or round-robin.",
    )
    vllm_api_key: SecretStr | None = Field(
        None,
        description="The key vLLM accepts (sent as `Authorization: Bearer`). Remote engine: the "
        "key sent to every remote vLLM server (their --api-key); unset = none sent. Embedded "
        "engine: unset = a fresh random key per engine start.",
    )
    vllm_dtype: str = Field(
        "auto",
        description="vLLM --dtype; 'auto' = bfloat16 on CPUs with native bf16, float32 on other "
        "CPUs (emulated bf16 is slower there), the model's dtype on a GPU.",
    )
    vllm_tool_parser: str = Field(
        "auto",
        description="Embedded engine: vLLM's --tool-call-parser for `tool_choice: auto`; 'auto' "
        "= chosen from the base model's chat template and type (hermes for the bundled model, "
        "Qwen and Hermes; llama3_json for Llama 3.x; mistral; pythonic for Gemma 3), 'none' = "
        "no automatic tool choice (required and named tool choices still work). A remote "
        "engine uses what its servers were started with.",
    )
    vllm_tool_strict_level: Literal["auto", "function", "parameter"] = Field(
        "parameter",
        description="Embedded engine: vLLM's --tool-strict-level. 'parameter' = tool-call "
        "arguments always follow the tool's JSON schema (as if every tool were `strict: true`; "
        "small models otherwise echo the schema back as arguments); 'function' = only the call's "
        "name and shape are enforced; 'auto' = arguments enforced only for tools marked strict.",
    )
    vllm_compact_json: bool = Field(
        True,
        description="Embedded engine: guided JSON (response_format, tool-call arguments) leaves "
        "no room for free whitespace, so a small model cannot loop on newlines inside a JSON "
        "answer until max_tokens; uses vLLM's xgrammar backend (false = vLLM picks a backend "
        "per request and whitespace is free).",
    )
    vllm_cpu_lora_ops: bool = Field(
        True,
        description="Embedded engine on vLLM's CPU build: LoRA applied per adapter, not by copying "
        "the adapter's weights for every token (lorag's vLLM plugin, "
        "service/engine/cpu_lora_ops.py); false = vLLM's own ops (VLLM_PLUGINS set to none).",
    )
    max_model_len: int = Field(
        DEFAULT_MAX_MODEL_LEN, description="Context length vLLM serves (prompt + answer)."
    )
    max_lora_rank: int = Field(16, description="Largest LoRA rank vLLM serves.")
    max_loras: int = Field(4, description="Adapters in one engine batch.")
    max_cpu_loras: int = Field(8, description="Adapters kept loaded in the engine (LRU cap).")
    vllm_kv_cache_gib: int = Field(1, description="CPU KV cache size (VLLM_CPU_KVCACHE_SPACE).")
    vllm_start_timeout_s: float = Field(
        300.0, description="How long the embedded engine may take to become healthy."
    )
    vllm_extra_args: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra vLLM command-line arguments, comma-separated (never --api-key).",
    )
    vllm_probe_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often the gateway probes each running vLLM server's /health (embedded: "
        "a hung engine is killed and restarted; remote: a server down is re-probed and used "
        "again once it answers).",
    )
    vllm_probe_timeout_s: float = Field(
        5.0, gt=0, description="A /health probe that takes longer than this has failed."
    )
    vllm_probe_failures: int = Field(
        3,
        ge=1,
        description="Consecutive failed probes after which a server is taken as down (embedded: "
        "killed and restarted).",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("vllm_urls", "vllm_extra_args"):
                if key in data:
                    data[key] = _split_list(data[key])
        return data

    @field_validator("vllm_api_key", mode="before")
    @classmethod
    def _blank_vllm_key_is_unset(cls, value: object) -> object:
        """`LORAG_VLLM_API_KEY=` (empty or blanks) means no key, exactly like unset."""
        return _blank_secret_is_none(value)

    @field_validator("vllm_extra_args")
    @classmethod
    def _no_key_on_the_command_line(cls, value: list[str]) -> list[str]:
        if any(arg.split("=", 1)[0] == "--api-key" for arg in value):
            raise ValueError(
                "--api-key does not belong in LORAG_VLLM_EXTRA_ARGS (the command line is "
                "visible to every local user): set LORAG_VLLM_API_KEY instead"
            )
        return value

    @field_validator("replica_key", mode="before")
    @classmethod
    def _replica_key_long_enough(cls, value: object) -> object:
        """Blank = unset (the endpoint is off); a set key must be long: it opens every
        adapter's weights."""
        value = _blank_secret_is_none(value)
        if isinstance(value, str) and len(value.strip()) < MIN_REPLICA_KEY_CHARS:
            raise ValueError(
                f"LORAG_REPLICA_KEY is too short: use at least {MIN_REPLICA_KEY_CHARS} "
                "characters (e.g. `openssl rand -hex 32`), or leave it unset to turn the "
                "internal adapter endpoint off"
            )
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_engine(self) -> EngineSettings:
        if self.engine == "remote" and not self.vllm_urls:
            raise ValueError("LORAG_ENGINE=remote needs LORAG_VLLM_URLS")
        if self.adapter_delivery == "resolver":
            if self.engine != "remote":
                raise ValueError(
                    "LORAG_ADAPTER_DELIVERY=resolver is for remote vLLM servers "
                    "(LORAG_ENGINE=remote): the embedded engine reads the adapter store itself"
                )
            if self.replica_key is None:
                raise ValueError(
                    "LORAG_ADAPTER_DELIVERY=resolver needs LORAG_REPLICA_KEY: the servers' "
                    "resolver plugin fetches adapters with it"
                )
        return self


class KnowledgeSettings(BaseModel):
    """The knowledge base: store, embedding model, chunking and ingest jobs."""

    qdrant_url: str | None = Field(
        None, description="Qdrant server URL (or ':memory:'); unset = embedded qdrant-edge folder."
    )
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    qdrant_collection: str = Field("lorag_chunks", description="Collection holding the chunks.")
    embedding_model: str | None = Field(
        None, description="sentence-transformers model path or id; unset = bundled MiniLM-L6-v2."
    )
    chunk_tokens: int = Field(200, description="Tokens per chunk (embedding model's tokenizer).")
    chunk_overlap: int = Field(40, description="Tokens shared by consecutive chunks.")
    ingest_queued_jobs_per_tenant: int = Field(
        16,
        ge=1,
        description="Ingest jobs a tenant may have queued (not yet running); more: 429.",
    )
    knowledge_min_free_mb: int = Field(
        64,
        ge=0,
        description="Free space (MiB) the embedded knowledge store keeps on its folder's disk: "
        "a write that would leave less (an ingest batch, a delete) is refused with 503 and its "
        "job fails, searches go on. qdrant-edge writes through memory maps, so on a really "
        "full disk the whole gateway dies (SIGBUS). An upsert batch of 256 chunks takes ~1-3 "
        "MiB, opening the store a few more; the margin also covers a new WAL segment's pages "
        "and a restart. A Qdrant server (LORAG_QDRANT_URL) minds its own disk.",
    )
    ingest_jobs_kept_per_tenant: int = Field(
        100, ge=1, description="Finished ingest job records kept per tenant (the newest)."
    )
    ingest_scrub_pii: bool = Field(
        False,
        description="Scrub personal data (emails, phone numbers, card numbers, IBANs -> "
        "placeholders) from every ingested document before it is stored: CLI ingests and "
        "every HTTP ingest job, which cannot turn it off. Off: only an ingest that asks for "
        "it (`lorag ingest --scrub-pii`, `scrub_pii` in the job request) is scrubbed.",
    )


class LimitsSettings(BaseModel):
    """Request size limits."""

    max_request_bytes: int = Field(
        8 * 2**20,
        ge=1024,
        description="Largest request body (JSON API calls); larger is refused with 413.",
    )
    max_upload_bytes: int = Field(
        64 * 2**20,
        ge=1024,
        description="Largest body of a knowledge ingest (POST .../knowledge/documents: file "
        "uploads or JSON documents); larger is refused with 413. Each uploaded file is also "
        "capped at 64 MiB.",
    )


# pydantic collects fields from the last base to the first: the sections are listed in
# reverse so that the fields keep their order (paths, model, gateway, engine, knowledge,
# limits) in `model_fields`, help output and error messages.
class Settings(
    LimitsSettings,
    KnowledgeSettings,
    EngineSettings,
    GatewaySettings,
    ModelSettings,
    PathsSettings,
    BaseSettings,
):
    """Every section in one frozen object read from `LORAG_*` variables; unknown keys refused."""

    model_config = SettingsConfigDict(env_prefix="LORAG_", frozen=True, extra="forbid")


def _is_secret(field: str) -> bool:
    """Whether a settings field holds a secret (unknown fields count as secret)."""
    info = Settings.model_fields.get(field)
    return info is None or SecretStr in (info.annotation, *get_args(info.annotation))


SECRET_VARIABLES = frozenset(
    f"LORAG_{name.upper()}" for name in Settings.model_fields if _is_secret(name)
)
"""The environment variables that hold secrets (the admin key, the Qdrant and vLLM API keys)."""


def settings_error_lines(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable; a secret's value is never shown."""
    lines = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"])
        line = f"{'LORAG_' + field.upper() if field else 'settings'}: {problem['msg']}"
        if not _is_secret(field) and "input" in problem:
            line += f" (got {problem['input']!r})"
        lines.append(line)
    return lines


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child process (vLLM): ours without lorag's secrets, plus `extra`.

    The one place besides `Settings` that touches the process environment: children must
    inherit PATH, HOME and the like, but never the admin, Qdrant or vLLM keys (the embedded
    engine hands vLLM its key as `VLLM_API_KEY`, in `extra`).
    """
    import os

    inherited = {k: v for k, v in os.environ.items() if k.upper() not in SECRET_VARIABLES}
    return {**inherited, **extra}
