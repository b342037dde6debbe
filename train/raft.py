"""RAFT training data: teach the adapter to answer from the right source among distractors.

For every question/answer pair (`QA.jsonl`: `question`, `answer`, optional `doc_id` naming the
document that holds the answer), the tenant's knowledge base is searched and a chat example
is written whose prompt carries numbered chunks exactly as the gateway presents them at
serving time (`lorag.prompting.with_context`, a mode's default template unless `--template`):
the right chunk (the "oracle") shuffled among distractors, and an answer that cites it with
`[n]`. A seeded `no_context_fraction` of the examples leaves the oracle out; their answer says
the sources do not hold the answer, so the adapter learns not to invent one.

The oracle is the best-ranked chunk of `doc_id` (searched within that document if the top hits
miss it); without `doc_id`, the best-ranked chunk containing the answer text; else the top hit.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from lorag.prompting import DEFAULT_TEMPLATE as TEMPLATE
from lorag.retrieval_policy import RetrievalSettings, sources_budget
from lorag.settings import DEFAULT_MAX_MODEL_LEN
from train.errors import DependencyMissing, InvalidData, InvalidOption
from train.examples import Example

__all__ = [
    "NOT_FOUND_ANSWER",
    "QAItem",
    "RaftSummary",
    "build_raft_examples",
    "build_raft_file",
    "load_qa",
]

SERVING_BUDGET_TOKENS = sources_budget(DEFAULT_MAX_MODEL_LEN, RetrievalSettings(), None)
"""The prompt budget a mode's sources get with the default settings (LORAG_MAX_MODEL_LEN less a
mode's default answer reserve): 1792 tokens."""

NOT_FOUND_ANSWER = "I do not know: the sources do not contain the answer to this question."

SearchFn = Callable[[str, int, dict[str, Any] | None], Sequence[Any]]  # (query, top_k, filter)


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    doc_id: str | None
    line: int


@dataclass
class RaftSummary:
    questions: int = 0
    examples: int = 0
    with_oracle: int = 0
    without_oracle: int = 0
    oracle_by_doc_id: int = 0
    oracle_by_answer_text: int = 0
    oracle_is_top_hit: int = 0
    skipped_no_hits: int = 0
    budget_tokens: int = 0
    sources_dropped_for_budget: int = 0
    longest_prompt_tokens: int = 0

    def __str__(self) -> str:
        return "raft: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in asdict(self).items())


def _qa_item(number: int, record: Any) -> QAItem:
    if not isinstance(record, dict):
        raise BadLine("expected a JSON object")
    question = record.get("question", record.get("prompt"))
    answer = record.get("answer", record.get("completion"))
    doc_id = record.get("doc_id")
    if not isinstance(question, str) or not question.strip():
        raise BadLine("missing or empty 'question'")
    if not isinstance(answer, str) or not answer.strip():
        raise BadLine("missing or empty 'answer'")
    if doc_id is not None and not isinstance(doc_id, str):
        raise BadLine("'doc_id' must be a string")
    return QAItem(question.strip(), answer.strip(), doc_id, number)


def load_qa(path: Path) -> list[QAItem]:
    """Read QA.jsonl (`question`/`prompt`, `answer`/`completion`, optional `doc_id`)."""
    if not path.is_file():
        raise InvalidData(f"QA file not found: {path}", param=str(path))
    read = read_jsonl(path, _qa_item)
    if read.problems:
        raise InvalidData(
            bad_lines_message(path, read.problems), param=str(path), problems=read.problems
        )
    if not read.items:
        raise InvalidData(f"{path.name}: no question/answer pairs", param=str(path))
    return read.items


def _normalized(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _find_oracle(item: QAItem, hits: list[Any], search: SearchFn) -> tuple[Any | None, str]:
    if item.doc_id is not None:
        for hit in hits:
            if hit.doc_id == item.doc_id:
                return hit, "doc_id"
        within = search(item.question, 1, {"doc_id": item.doc_id})
        return (within[0], "doc_id") if within else (None, "")
    answer = _normalized(item.answer)
    for hit in hits:
        if answer and answer in _normalized(hit.text):
            return hit, "answer_text"
    return (hits[0], "top_hit") if hits else (None, "")


def _cited(answer: str, number: int) -> str:
    answer = answer.rstrip()
    if answer.endswith((".", "!", "?")):
        return f"{answer[:-1]} [{number}]{answer[-1]}"
    return f"{answer} [{number}]"


def build_raft_examples(
    items: Sequence[QAItem],
    search: SearchFn,
    tokenizer: Any,
    *,
    top_k: int = 4,
    no_context_fraction: float = 0.1,
    seed: int = 0,
    budget_tokens: int = SERVING_BUDGET_TOKENS,
    template_version: str = TEMPLATE,
) -> tuple[list[Example], RaftSummary]:
    """Chat examples: the question with numbered sources (the gateway's layout, within the
    token budget the gateway gives them), and the answer citing the right source, or
    `NOT_FOUND_ANSWER` when it was left out."""
    from lorag.prompting import with_context

    if top_k < 1:
        raise InvalidOption("--top-k must be at least 1", param="top_k")
    if not 0.0 <= no_context_fraction < 1.0:
        raise InvalidOption("--no-context-fraction must be in [0, 1)", param="no_context_fraction")
    rng = random.Random(seed)
    summary = RaftSummary(questions=len(items), budget_tokens=budget_tokens)
    examples: list[Example] = []
    for item in items:
        hits = list(search(item.question, top_k + 1, None))
        oracle, how = _find_oracle(item, hits, search)
        if oracle is None:
            summary.skipped_no_hits += 1
            continue
        distractors = [hit for hit in hits if hit.id != oracle.id]
        keep_oracle = rng.random() >= no_context_fraction or not distractors
        chosen = [oracle, *distractors[: top_k - 1]] if keep_oracle else distractors[:top_k]
        rng.shuffle(chosen)
        question = [{"role": "user", "content": item.question}]
        assembled = with_context(
            question,
            chosen,
            tokenizer=tokenizer,
            template_version=template_version,
            instructions=None,
            budget_tokens=budget_tokens,
        )
        ids = [hit.id for hit in assembled.kept]
        summary.sources_dropped_for_budget += assembled.dropped
        summary.longest_prompt_tokens = max(summary.longest_prompt_tokens, assembled.prompt_tokens)
        if keep_oracle and oracle.id in ids:
            answer = _cited(item.answer, ids.index(oracle.id) + 1)
            summary.with_oracle += 1
            summary.oracle_by_doc_id += how == "doc_id"
            summary.oracle_by_answer_text += how == "answer_text"
            summary.oracle_is_top_hit += how == "top_hit"
        else:
            answer = NOT_FOUND_ANSWER
            summary.without_oracle += 1
        messages = (*assembled.messages, {"role": "assistant", "content": answer})
        examples.append(Example(tuple(messages), line=item.line, source="raft"))
    summary.examples = len(examples)
    return examples, summary


def build_raft_file(
    settings: Any,
    qa_path: Path,
    *,
    tenant: str,
    out: Path,
    top_k: int = 4,
    no_context_fraction: float = 0.1,
    seed: int = 0,
    template_version: str = TEMPLATE,
    budget_tokens: int | None = None,
) -> RaftSummary:
    """`lorag train build-raft`: read QA.jsonl, search the tenant's knowledge base, write
    chat JSONL to `out` (train on it with `lorag train --data OUT`). `budget_tokens`: the
    prompt's token budget for sources; None = what the gateway gives a mode's sources
    (`lorag.retrieval_policy.sources_budget` with a mode's defaults)."""
    try:
        from ingest.knowledge import open_knowledge_base
    except ImportError as exc:
        raise DependencyMissing("the knowledge base (ingest package) is not available") from exc
    from lorag.base_model import resolve_base_model
    from train.model_setup import load_tokenizer

    items = load_qa(qa_path)
    tokenizer = load_tokenizer(resolve_base_model(settings))
    with open_knowledge_base(settings) as kb:

        def search(query: str, k: int, where: dict[str, Any] | None) -> Sequence[Any]:
            return kb.search(tenant, query, top_k=k, filter=where)

        examples, summary = build_raft_examples(
            items,
            search,
            tokenizer,
            top_k=top_k,
            no_context_fraction=no_context_fraction,
            seed=seed,
            template_version=template_version,
            budget_tokens=sources_budget(settings.max_model_len, RetrievalSettings(), None)
            if budget_tokens is None
            else budget_tokens,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"messages": list(example.messages)} for example in examples]
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return summary
