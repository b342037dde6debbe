"""`/v1/embeddings`: vectors from the knowledge base's own embedding model.

The model is the one the knowledge base embeds documents with (`LORAG_EMBEDDING_MODEL`; by
default the bundled all-MiniLM-L6-v2, 384 dimensions, normalized), named in `model` by its
short name and listed in `/v1/models`. What OpenAI's endpoint accepts, except:

- token ids as input are refused: ids from another tokenizer (tiktoken's, which LangChain's
  `OpenAIEmbeddings` sends unless `check_embedding_ctx_length=False`) mean nothing here;
- `dimensions` other than the model's own is refused: this model cannot shorten its vectors;
- a text longer than the model reads (256 tokens for MiniLM) is cut there, as in search.

`encoding_format: "base64"` is the vector's little-endian float32 bytes, as OpenAI sends it
(the openai SDK asks for it by default and decodes it).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import numpy as np

from service.errors import InvalidRequest, NotFound
from service.protocol.openai import EmbeddingRequest

if TYPE_CHECKING:
    from ingest.embedding import Embedder

__all__ = ["MAX_INPUTS", "embedding_response", "texts_of"]

MAX_INPUTS = 2048
"""Inputs in one request (OpenAI's limit)."""


def texts_of(request: EmbeddingRequest, model_name: str, dim: int) -> list[str]:
    """The texts to embed, once the request is checked against the model that serves it."""
    if request.model != model_name:
        raise NotFound(
            f"The model `{request.model}` does not serve embeddings; use `{model_name}`.",
            param="model",
            code="model_not_found",
        )
    if request.dimensions is not None and request.dimensions != dim:
        raise InvalidRequest(
            f"dimensions: {model_name} makes {dim}-dimension vectors and cannot shorten them; "
            f"leave dimensions out or send {dim}",
            param="dimensions",
        )
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not texts:
        raise InvalidRequest("input: give at least one text", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"input: at most {MAX_INPUTS} texts per request", param="input")
    checked: list[str] = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidRequest(
                "input: send text, not token ids (ids from another tokenizer mean nothing to "
                f"{model_name}; LangChain: OpenAIEmbeddings(check_embedding_ctx_length=False))",
                param="input",
                code="unsupported_input",
            )
        if not text:
            raise InvalidRequest(f"input[{index}]: must not be empty", param="input")
        checked.append(text)
    return checked


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def embedding_response(request: EmbeddingRequest, embedder: Embedder) -> dict[str, Any]:
    """OpenAI's embedding list for `request` (blocking: run it off the event loop)."""
    texts = texts_of(request, embedder.name, embedder.dim)
    vectors = embedder.embed_queries(texts)
    tokens = embedder.count_tokens(texts)
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": _encoded(vector, request.encoding_format),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
