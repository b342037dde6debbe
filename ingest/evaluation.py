"""Retrieval evaluation on a dataset in BEIR's layout: recall@k, MRR@10 and nDCG@10.

The folder holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`, `text`)
and `qrels/<split>.tsv` (`query-id`, `corpus-id`, `score`, with a header row). Search
returns chunks; a document's rank is the rank of its best chunk. nDCG uses linear gains
(as trec_eval does).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.errors import InvalidDataset, InvalidDocument
from ingest.knowledge import SEARCH_MODES, KnowledgeBase
from ingest.models import SearchMode, SourceDocument
from ingest.records import record_document

__all__ = [
    "CUTOFF",
    "BeirDataset",
    "RetrievalScores",
    "evaluate",
    "format_scores",
    "load_beir",
    "rank_documents",
    "score_ranking",
]

CUTOFF = 10


@dataclass(frozen=True, slots=True)
class BeirDataset:
    corpus: list[SourceDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class RetrievalScores:
    mode: str
    k: int
    queries: int
    recall: float
    mrr: float
    ndcg: float


def _jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise InvalidDataset(f"missing {path.name} in {path.parent}", param=path.name)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidDataset(f"{path.name}:{number}: invalid JSON: {exc}") from None
        if not isinstance(row, dict) or "_id" not in row:
            raise InvalidDataset(f"{path.name}:{number}: expected an object with '_id'")
        rows.append((number, row))
    return rows


def load_beir(folder: Path, *, split: str = "test") -> BeirDataset:
    """Read a BEIR-layout folder; `InvalidDataset` names the file and line at fault."""
    folder = Path(folder)
    corpus = []
    for number, row in _jsonl(folder / "corpus.jsonl"):
        try:
            corpus.append(record_document(row, source="corpus.jsonl", line=number))
        except InvalidDocument as exc:
            raise InvalidDataset(f"corpus.jsonl:{number}: {exc.message}") from None
    query_rows = _jsonl(folder / "queries.jsonl")
    queries = {str(row["_id"]): str(row.get("text", "")) for _, row in query_rows}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InvalidDataset(f"missing qrels/{split}.tsv in {folder}", param="qrels")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        for number, cells in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if number == 1 and cells and cells[0] == "query-id":
                continue
            if len(cells) != 3:
                raise InvalidDataset(f"qrels/{split}.tsv:{number}: expected 3 columns")
            try:
                score = int(cells[2])
            except ValueError:
                message = f"qrels/{split}.tsv:{number}: score is not an integer"
                raise InvalidDataset(message) from None
            qrels.setdefault(cells[0], {})[cells[1]] = score
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise InvalidDataset(f"qrels name queries not in queries.jsonl: {missing[:5]}")
    return BeirDataset(corpus, queries, qrels)


def rank_documents(
    kb: KnowledgeBase, tenant: str, query: str, mode: SearchMode, k: int
) -> list[str]:
    """Document ids ranked by their best chunk, at most `k`."""
    hits = kb.search(tenant, query, top_k=min(100, max(k, CUTOFF) * 3), mode=mode)
    ranked = list(dict.fromkeys(hit.doc_id for hit in hits))
    return ranked[: max(k, CUTOFF)]


def score_ranking(
    ranked: list[str], relevant: dict[str, int], k: int
) -> tuple[float, float, float]:
    """(recall@k, reciprocal rank within 10, nDCG@10) of one query."""
    positive = {doc for doc, grade in relevant.items() if grade > 0}
    recall = len(positive & set(ranked[:k])) / len(positive) if positive else 0.0
    top = list(enumerate(ranked[:CUTOFF], start=1))
    mrr = next((1.0 / rank for rank, doc in top if doc in positive), 0.0)
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in top)
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:CUTOFF]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    return recall, mrr, (dcg / idcg if idcg else 0.0)


def evaluate(
    kb: KnowledgeBase,
    tenant: str,
    dataset: BeirDataset,
    *,
    k: int = 10,
    modes: Sequence[SearchMode] = SEARCH_MODES,  # type: ignore[assignment]
) -> list[RetrievalScores]:
    """Mean scores per search mode over the queries that have judgements."""
    results = []
    for mode in modes:
        totals = [0.0, 0.0, 0.0]
        for qid, relevant in dataset.qrels.items():
            ranked = rank_documents(kb, tenant, dataset.queries[qid], mode, k)
            for i, value in enumerate(score_ranking(ranked, relevant, k)):
                totals[i] += value
        n = len(dataset.qrels)
        recall, mrr, ndcg = (total / max(1, n) for total in totals)
        results.append(RetrievalScores(mode, k, n, recall, mrr, ndcg))
    return results


def format_scores(scores: list[RetrievalScores]) -> str:
    k = scores[0].k if scores else CUTOFF
    lines = [f"{'mode':<8} {f'recall@{k}':>10} {'MRR@10':>8} {'nDCG@10':>8}"]
    for s in scores:
        lines.append(f"{s.mode:<8} {s.recall:>10.3f} {s.mrr:>8.3f} {s.ndcg:>8.3f}")
    return "\n".join(lines)
