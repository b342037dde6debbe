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

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from lorag.jsonl import BadLine, bad_lines_message, read_jsonl
from lorag.settings import Settings
from service.errors import InvalidRequest

__all__ = [
    "ModeSummary",
    "Outcome",
    "QAItem",
    "api_key_of",
    "chart",
    "judge",
    "read_qa",
    "register_eval",
    "run",
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
    )


def run(
    url: str,
    api_key: str,
    items: list[QAItem],
    modes: list[str],
    max_tokens: int,
    concurrency: int = 1,
) -> list[ModeSummary]:
    """Every question through every mode; `concurrency` requests in flight at once (the
    engine batches them: faster, but each latency then includes the others' share)."""
    summaries = [ModeSummary(mode) for mode in modes]
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:

        def ask(job: tuple[QAItem, str]) -> Outcome:
            item, mode = job
            body = {
                "model": mode,
                "messages": [{"role": "user", "content": item.question}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
            started = time.perf_counter()
            answer = client.post("/v1/chat/completions", json=body)
            seconds = time.perf_counter() - started
            if answer.status_code != 200:
                raise InvalidRequest(
                    f"mode {mode!r}: HTTP {answer.status_code}: {answer.text[:300]}"
                )
            return judge(mode, item, answer.json(), seconds)

        jobs = [(item, mode) for item in items for mode in modes]
        with ThreadPoolExecutor(concurrency) as pool:
            for outcome in pool.map(ask, jobs):
                summaries[modes.index(outcome.mode)].outcomes.append(outcome)
    return summaries


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def table(summaries: list[ModeSummary], exact: bool) -> str:
    head = "| mode | accuracy |" + (" exact |" if exact else "") + " citation accuracy |"
    head += " mean latency (s) | mean tokens |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        row = f"| {s.mode} | {_percent(s.accuracy)} |"
        row += f" {_percent(s.exact)} |" if exact else ""
        row += f" {_percent(s.citation_accuracy)} | {s.latency:.2f} | {s.tokens:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def chart(summaries: list[ModeSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [s.mode for s in summaries]
    accuracy = [100 * s.accuracy for s in summaries]
    citations = [100 * (s.citation_accuracy or 0.0) for s in summaries]
    positions = range(len(modes))
    figure, axis = plt.subplots(figsize=(1.6 * len(modes) + 2, 4))
    axis.bar([p - 0.2 for p in positions], accuracy, width=0.4, label="accuracy")
    axis.bar([p + 0.2 for p in positions], citations, width=0.4, label="citation accuracy")
    axis.set_xticks(list(positions), modes)
    axis.set_ylim(0, 100)
    axis.set_ylabel("%")
    axis.set_title("Answers by mode")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def register_eval(eval_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = eval_commands.add_parser(
        "answers",
        help="compare a tenant's modes (base, rag, adapter, hybrid) on a QA file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("qa", type=Path, help="QA JSONL: question, answer, doc_id (optional)")
    parser.add_argument("--tenant", required=True, help="tenant whose modes are compared")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help="that tenant's API key (lrg-...), or '-' to read it from standard input; a key "
        "given here is visible to other local users (ps, /proc): prefer '-' or --api-key-file",
    )
    key.add_argument(
        "--api-key-file", type=Path, metavar="PATH", help="read that tenant's API key from PATH"
    )
    parser.add_argument(
        "--modes", default="base,rag,adapter,hybrid", help="comma-separated mode names"
    )
    parser.add_argument("--url", default=None, help="gateway URL (default: LORAG_HOST/PORT)")
    parser.add_argument("--exact", action="store_true", help="also report exact match")
    parser.add_argument("--max-tokens", type=int, default=64, help="answer length (default 64)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        metavar="N",
        help="requests in flight at once (default 1: each latency is the mode's own; more is "
        "faster, and every latency then includes waiting for the others)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("lorag-report"), help="report.md, .png, answers.jsonl"
    )
    parser.set_defaults(handler=_eval_answers)


def api_key_of(args: argparse.Namespace, stdin: TextIO | None = None) -> str:
    """The tenant's key: `--api-key KEY`, `--api-key -` (first line of standard input) or
    `--api-key-file PATH` (the file's text), without surrounding blanks."""
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise InvalidRequest(
                f"cannot read --api-key-file {args.api_key_file}: {reason}", param="api_key_file"
            ) from None
        source = "--api-key-file"
    elif args.api_key == "-":
        key = (stdin or sys.stdin).readline()
        source = "standard input"
    else:
        key, source = args.api_key, "--api-key"
    key = key.strip()
    if not key:
        raise InvalidRequest(f"the API key from {source} is empty", param="api_key")
    return key


def _eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    if args.concurrency < 1:
        raise InvalidRequest("--concurrency must be at least 1", param="concurrency")
    items = read_qa(args.qa)
    api_key = api_key_of(args)
    if settings.registry_path.exists():  # a local registry can tell whose key this is
        from adapters.from_settings import open_registry

        owner = open_registry(settings).tenant_for_key(api_key)
        if owner is not None and owner.id != args.tenant:
            raise InvalidRequest(f"the API key belongs to tenant {owner.id!r}, not {args.tenant!r}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    url = args.url or f"http://{settings.host}:{settings.port}"
    summaries = run(url, api_key, items, modes, args.max_tokens, args.concurrency)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "answers.jsonl").open("w", encoding="utf-8") as handle:
        for summary in summaries:
            for outcome in summary.outcomes:
                handle.write(json.dumps(outcome.__dict__) + "\n")
                mark = "ok " if outcome.correct else "-- "
                print(f"{mark}[{outcome.mode}] {outcome.question} -> {outcome.reply!r}")
    report = table(summaries, args.exact)
    header = f"# Mode report: tenant {args.tenant}, {len(items)} questions\n\n"
    (args.out / "report.md").write_text(header + report + "\n", encoding="utf-8")
    chart(summaries, args.out / "report.png")
    print()
    print(report)
    print(f"\nwrote {args.out / 'report.md'}, {args.out / 'report.png'}")
    return 0
