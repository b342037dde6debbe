"""OpenAI request and response types the gateway validates.

Permissive (`extra="allow"`): fields lorag does not know pass through to vLLM untouched.
OpenAI's fields come first in the spec's order; lorag's extension follows a marked comment.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lorag.retrieval_policy import RetrievalOverride

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "EmbeddingRequest",
    "LoragOptions",
    "ModelCard",
    "ModelList",
    "OpenAIModel",
    "ResponsesRequest",
    "RetrievalOverride",
    "StreamOptions",
]


class OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class LoragOptions(BaseModel):
    """lorag's extension field `lorag` (`RetrievalOverride`: `lorag.retrieval_policy`)."""

    model_config = ConfigDict(extra="forbid")

    retrieval: RetrievalOverride | None = None


class ChatMessage(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(OpenAIModel):
    include_usage: bool | None = None


class _SamplingFields(OpenAIModel):
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=128)  # OpenAI's limit
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatCompletionRequest(_SamplingFields):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    # --- lorag extension ---
    lorag: LoragOptions | None = None


class CompletionRequest(_SamplingFields):
    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    # --- lorag extension ---
    lorag: LoragOptions | None = None


class ResponsesRequest(OpenAIModel):
    """OpenAI's Responses API, stateless: lorag keeps no responses (the conversation travels in
    `input`), so `previous_response_id` and `background` are refused by name."""

    model: str = Field(min_length=1)
    input: str | list[Any]
    stream: bool = False
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    previous_response_id: str | None = None
    background: bool | None = None


class EmbeddingRequest(OpenAIModel):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int | None = None
    """Prompt + answer tokens the model serves (as vLLM's cards say); None for embeddings."""
    # --- lorag extension ---
    lorag: dict[str, Any] | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
