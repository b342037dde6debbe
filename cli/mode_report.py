"""`lorag eval answers`: does fine-tuning pay, does RAG pay, or both? Measured on your data.

Every question of a QA file goes through the running gateway in each of the tenant's modes
(e.g. base, rag, adapter, hybrid); the report is a markdown table and a PNG bar chart:

- accuracy: the expected answer is contained in the reply (case-insensitive); with --exact
  also exact match after normalising case, spaces and final punctuation;
- citation accuracy: for questions with a `doc_id`, in modes that retrieve, the document the
  reply cites (or, when it cites none, the first source given) is the expected one;
- mean latency and mean completion tokens.

QA file: JSON lines `{"question": ..., "answer": ..., "doc_id": ...?}`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from service.errors import InvalidRequest

__all__ = [
    "ModeSummary",
    "Outcome",
    "QAItem",
    "bar_chart",
    "chart",
    "judge",
    "percent",
    "read_qa",
    "table",
]


@dataclass(frozen=True)
class QAItem:
    question: str
    answer: str
    doc_id: str | None = None


@dataclass
class Outcome:
    mode: str
    question: str
    expected: str
    reply: str
    correct: bool
    exact: bool
    cited_doc: str | None
    citation_ok: bool | None
    seconds: float
    tokens: int
    degenerate: str | None = None  # why the answer says nothing (`lorag.retrieval`)
    retried: bool = False
    settings: dict[str, Any] | None = None  # the retrieval settings it was answered with
    retrieval_seconds: float = 0.0  # the gateway's search and prompt assembly


@dataclass
class ModeSummary:
    mode: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return sum(o.correct for o in self.outcomes) / len(self.outcomes)

    @property
    def exact(self) -> float:
        return sum(o.exact for o in self.outcomes) / len(self.outcomes)

    @property
    def citation_accuracy(self) -> float | None:
        judged = [o.citation_ok for o in self.outcomes if o.citation_ok is not None]
        return sum(judged) / len(judged) if judged else None

    @property
    def latency(self) -> float:
        return statistics.mean(o.seconds for o in self.outcomes)

    @property
    def tokens(self) -> float:
        return statistics.mean(o.tokens for o in self.outcomes)

    @property
    def retrieval_ms(self) -> float:
        return 1000 * statistics.mean(o.retrieval_seconds for o in self.outcomes)

    @property
    def degenerate(self) -> int:
        return sum(o.degenerate is not None for o in self.outcomes)


def _qa_item(number: int, record: Any) -> QAItem:
    if not isinstance(record, dict):
        raise BadLine("expected an object")
    for key in ("question", "answer"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise BadLine(f"field {key!r} missing or empty")
    doc_id = record.get("doc_id")
    return QAItem(record["question"], record["answer"], str(doc_id) if doc_id else None)


def read_qa(path: Path) -> list[QAItem]:
    """Read the QA file; every bad line is reported at once (`InvalidRequest`)."""
    read = read_jsonl(path, _qa_item)
    if read.problems:
        raise InvalidRequest(bad_lines_message(path, read.problems), param=str(path))
    if not read.items:
        raise InvalidRequest(f"{path}: no questions")
    return read.items


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!?")


def judge(mode: str, item: QAItem, reply: dict[str, Any], seconds: float) -> Outcome:
    text = reply["choices"][0]["message"].get("content") or ""
    retrieval = (reply.get("lorag") or {}).get("retrieval")
    report = retrieval or {}
    cited_doc, citation_ok = None, None
    if retrieval is not None and item.doc_id is not None:
        citations = retrieval.get("citations") or []
        cited = [c for c in citations if c.get("cited")] or citations[:1]
        cited_doc = cited[0]["doc_id"] if cited else None
        citation_ok = cited_doc == item.doc_id
    return Outcome(
        mode=mode,
        question=item.question,
        expected=item.answer,
        reply=text,
        correct=item.answer.lower() in text.lower(),
        exact=_normal(item.answer) == _normal(text),
        cited_doc=cited_doc,
        citation_ok=citation_ok,
        seconds=seconds,
        tokens=int((reply.get("usage") or {}).get("completion_tokens") or 0),
        degenerate=report.get("degenerate"),
        retried=bool(report.get("retried")),
        settings=report.get("settings"),
        retrieval_seconds=float(report.get("seconds") or 0.0),
    )


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def table(summaries: list[ModeSummary], exact: bool) -> str:
    head = "| mode | accuracy |" + (" exact |" if exact else "") + " citation accuracy |"
    head += " mean latency (s) | mean tokens |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        row = f"| {s.mode} | {percent(s.accuracy)} |"
        row += f" {percent(s.exact)} |" if exact else ""
        row += f" {percent(s.citation_accuracy)} | {s.latency:.2f} | {s.tokens:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def chart(summaries: list[ModeSummary], path: Path) -> None:
    bar_chart([s.mode for s in summaries], summaries, path, title="Answers by mode")


def bar_chart(
    labels: list[str],
    summaries: list[ModeSummary],
    path: Path,
    *,
    title: str,
    bar_width: float = 1.6,
    height: float = 4,
    tick_size: float | None = None,
    legend: Literal["best", "lower right"] = "best",
) -> None:
    """Accuracy and citation accuracy side by side per summary, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    accuracy = [100 * s.accuracy for s in summaries]
    citations = [100 * (s.citation_accuracy or 0.0) for s in summaries]
    positions = range(len(labels))
    figure, axis = plt.subplots(figsize=(bar_width * len(labels) + 2, height))
    axis.bar([p - 0.2 for p in positions], accuracy, width=0.4, label="accuracy")
    axis.bar([p + 0.2 for p in positions], citations, width=0.4, label="citation accuracy")
    axis.set_xticks(list(positions), labels, fontsize=tick_size)
    axis.set_ylim(0, 100)
    axis.set_ylabel("%")
    axis.set_title(title)
    axis.legend(loc=legend)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
