"""`lorag eval answers`: does fine-tuning pay, does RAG pay, or both? Measured on your data.

Every question of a QA file goes through the running gateway in each of the tenant's modes
(e.g. base, rag, adapter, hybrid); the report is a markdown table and a PNG bar chart:

- accuracy: the expected answer is contained in the reply (case-insensitive); with --exact
  also exact match after normalising case, spaces and final punctuation;
- citation accuracy: for questions with a `doc_id`, in modes that retrieve, the document the
  reply cites (or, when it cites none, the first source given) is the expected one;
- mean latency, mean prompt tokens (what retrieval and instructions add) and mean completion
  tokens;
- which mode pays on this data: each mode's kind (base, prompt-only = the base with the mode's
  instructions, rag, adapter, hybrid, as `/v1/models` describes it), its gain over the base
  mode in points, what that costs in latency and tokens, and the guides' thresholds: below
  70% rethink (data, retrieval or the task), 70-85% promising, above 85% on track. The mode
  to ship is the cheapest within 3 points of the best.

A prompt-only baseline is a base mode with instructions: `lorag tenants set-mode T prompt base
--system-prompt "..."`. Try it before training: if it is on track, no adapter is needed.

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
    "kind_of",
    "percent",
    "read_qa",
    "table",
    "verdict",
]

RETHINK, ON_TRACK = 0.70, 0.85  # the guides' accuracy thresholds
SHIP_MARGIN = 0.03  # a cheaper mode this close to the best is the one to ship


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
    prompt_tokens: int = 0


@dataclass
class ModeSummary:
    mode: str
    outcomes: list[Outcome] = field(default_factory=list)
    kind: str = ""  # base, prompt-only, rag, adapter, hybrid (`kind_of`); "" unknown

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
    def prompt_tokens(self) -> float:
        return statistics.mean(o.prompt_tokens for o in self.outcomes)

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
        prompt_tokens=int((reply.get("usage") or {}).get("prompt_tokens") or 0),
        degenerate=report.get("degenerate"),
        retried=bool(report.get("retried")),
        settings=report.get("settings"),
        retrieval_seconds=float(report.get("seconds") or 0.0),
    )


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def kind_of(card: dict[str, Any] | None) -> str:
    """A mode's kind from its `/v1/models` card's `lorag` object."""
    if not card:
        return "base"
    adapter, retrieval = bool(card.get("adapter")), bool(card.get("retrieval"))
    kind = ("hybrid" if retrieval else "adapter") if adapter else "rag" if retrieval else "base"
    if card.get("instructions"):
        kind = "prompt-only" if kind == "base" else kind + " + instructions"
    return kind


def table(summaries: list[ModeSummary], exact: bool) -> str:
    head = "| mode | kind | accuracy |" + (" exact |" if exact else "")
    head += " citation accuracy | mean latency (s) | prompt tokens | answer tokens |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        row = f"| {s.mode} | {s.kind or '-'} | {percent(s.accuracy)} |"
        row += f" {percent(s.exact)} |" if exact else ""
        row += f" {percent(s.citation_accuracy)} | {s.latency:.2f} |"
        row += f" {s.prompt_tokens:.0f} | {s.tokens:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def _standing(accuracy: float) -> str:
    if accuracy < RETHINK:
        return f"below {RETHINK:.0%}: rethink"
    if accuracy <= ON_TRACK:
        return "promising"
    return f"above {ON_TRACK:.0%}: on track"


def verdict(summaries: list[ModeSummary]) -> str:
    """Which mode pays on this data, in markdown: each mode against the base mode (the first
    of kind base, else the first mode), and the cheapest one within SHIP_MARGIN of the best."""
    if not summaries:
        return ""
    reference = next((s for s in summaries if s.kind == "base"), summaries[0])
    lines = [
        f"Thresholds (the guides): below {RETHINK:.0%} accuracy rethink the approach (data, "
        f"retrieval, or the task); {RETHINK:.0%}-{ON_TRACK:.0%} promising; above "
        f"{ON_TRACK:.0%} on track.",
        "",
    ]
    for s in summaries:
        line = f"- {s.mode} ({s.kind or 'unknown kind'}): {percent(s.accuracy)}, "
        line += _standing(s.accuracy)
        if s is not reference:
            gain = 100 * (s.accuracy - reference.accuracy)
            ratio = s.latency / reference.latency if reference.latency else float("nan")
            extra = s.prompt_tokens - reference.prompt_tokens
            line += (
                f"; {gain:+.0f} points over {reference.mode} for {ratio:.1f}x its latency "
                f"and {extra:+.0f} prompt tokens per question"
            )
        lines.append(line)
    best = max(summaries, key=lambda s: s.accuracy)
    close = [s for s in summaries if s.accuracy >= best.accuracy - SHIP_MARGIN]
    ship = min(close, key=lambda s: s.latency)
    gap = round(100 * (best.accuracy - ship.accuracy))
    if ship is best:
        why = "the most accurate"
    elif gap == 0:
        why = f"as accurate as {best.mode} and faster"
    else:
        why = f"within {gap} points of {best.mode} ({percent(best.accuracy)}) and faster"
    lines += ["", f"**Pays on this data: {ship.mode}** ({ship.kind or 'mode'}; {why})."]
    if best.accuracy < RETHINK:
        lines.append(
            f"No mode reaches {RETHINK:.0%}: before training more, check the data, the "
            "knowledge base's coverage, and whether the questions are answerable."
        )
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
