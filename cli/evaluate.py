"""`lorag eval retrieval` (retrieval on a BEIR dataset) and `lorag eval answers` (a tenant's
modes compared on a QA file through the running gateway; the report itself: `cli.mode_report`).

Handlers take `(args, settings)` and return the exit code; the heavy imports (torch,
sentence-transformers) happen only when a handler runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from cli import mode_report
from cli import sweep as sweep_module
from cli.arguments import tenant_id
from cli.mode_report import (
    ModeSummary,
    Outcome,
    QAItem,
    chart,
    judge,
    kind_of,
    read_qa,
    table,
    verdict,
)
from ingest.errors import InvalidInput
from lorag.settings import Settings
from service.errors import InvalidRequest

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["api_key_of", "register", "run"]


def register(commands: Commands) -> None:
    """Add `lorag eval` with its `retrieval` and `answers` commands."""
    eval_parser = commands.add_parser("eval", help="measure retrieval and answer quality")
    eval_commands = eval_parser.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    _register_retrieval(eval_commands)
    _register_answers(eval_commands)


def _register_retrieval(eval_commands: Commands) -> None:
    parser = eval_commands.add_parser(
        "retrieval",
        help="measure retrieval quality on a BEIR-layout dataset",
        description=(
            "Ingest DIR/corpus.jsonl into a throwaway knowledge base (a temporary folder, "
            "with the configured embedding model and chunking), run DIR/queries.jsonl and "
            "print recall@k, MRR@10 and nDCG@10 against DIR/qrels/<split>.tsv for dense, "
            "sparse and hybrid search."
        ),
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="folder in BEIR's layout")
    parser.add_argument("--k", type=int, default=10, help="cutoff of recall@k (default 10)")
    parser.add_argument(
        "--tenant", type=tenant_id, default="eval", help="tenant to ingest into (default eval)"
    )
    parser.add_argument("--split", default="test", help="qrels file name (default test)")
    parser.add_argument(
        "--use-store",
        action="store_true",
        help="ingest into the configured knowledge base (as --tenant) instead of a throwaway one",
    )
    parser.set_defaults(handler=_eval_retrieval)


def _eval_retrieval(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.evaluation import evaluate, format_scores, load_beir
    from ingest.knowledge import open_knowledge_base

    if not 1 <= args.k <= 100:
        raise InvalidInput("--k must be between 1 and 100", param="k")
    dataset = load_beir(args.dir, split=args.split)
    with tempfile.TemporaryDirectory(prefix="lorag-eval-") as tmp:
        if not args.use_store:
            settings = settings.model_copy(update={"data_dir": Path(tmp), "qdrant_url": None})
        kb = open_knowledge_base(settings)
        try:
            report = kb.ingest_documents(args.tenant, dataset.corpus)
            scores = evaluate(kb, args.tenant, dataset, k=args.k)
        finally:
            kb.close()
    print(
        f"retrieval on {args.dir}: {len(dataset.corpus)} documents ({report.chunks} chunks), "
        f"{len(dataset.qrels)} queries, model {kb.embedder.name}"
    )
    for name, reason in report.failed:
        print(f"  not ingested: {name}: {reason}")
    print(format_scores(scores))
    return 0


def _register_answers(eval_commands: Commands) -> None:
    parser = eval_commands.add_parser(
        "answers",
        help="compare a tenant's modes (base, rag, adapter, hybrid) on a QA file",
        description=mode_report.__doc__,
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
    grid = ", ".join(
        f"{name}={','.join(map(sweep_module.value_text, values))}"
        for name, values in sweep_module.DEFAULT_GRID.items()
    )
    about = (
        f"With --sweep, one mode's retrieval settings are tried over a grid instead (default "
        f"{grid}): sweep.md, sweep.png and sweep.jsonl in --out, and the command that sets "
        "the mode to the winner. " + " ".join(sweep_module.__doc__.split("\n\n")[1].split())
    )
    sweep = parser.add_argument_group("sweep", textwrap.fill(about, 78))
    sweep.add_argument(
        "--sweep", action="store_true", help="try a grid of retrieval settings on one mode"
    )
    sweep.add_argument(
        "--vary",
        action="append",
        metavar="NAME=V1,V2",
        help="a grid row replacing the default's (repeatable): top_k, min_k, relative_cutoff "
        "(none or 0..1), search, template, collapse_near_duplicates, source_order, "
        "on_degenerate",
    )
    parser.set_defaults(handler=_eval_answers)


def api_key_of(args: argparse.Namespace, stdin: TextIO | None = None) -> str:
    """The tenant's key: `--api-key KEY`, `--api-key -` (first line of standard input) or
    `--api-key-file PATH` (the file's text), without surrounding blanks."""
    key: str
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
    if args.sweep or args.vary:
        return _sweep(args, url, api_key, items, modes)
    summaries = run(
        url, api_key, items, modes, args.max_tokens, args.concurrency, progress=_progress("")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "answers.jsonl").open("w", encoding="utf-8") as handle:
        for summary in summaries:
            for outcome in summary.outcomes:
                handle.write(json.dumps(outcome.__dict__) + "\n")
                mark = "ok " if outcome.correct else "-- "
                print(f"{mark}[{outcome.mode}] {outcome.question} -> {outcome.reply!r}")
    report = table(summaries, args.exact) + "\n\n## Which pays\n\n" + verdict(summaries)
    header = f"# Mode report: tenant {args.tenant}, {len(items)} questions\n\n"
    (args.out / "report.md").write_text(header + report + "\n", encoding="utf-8")
    chart(summaries, args.out / "report.png")
    print()
    print(report)
    print(f"\nwrote {args.out / 'report.md'}, {args.out / 'report.png'}")
    return 0


def _progress(label: str) -> Callable[[int, int], None]:
    """Prints `answered N/TOTAL` to standard error about every 10% (and at the end)."""

    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"{label}answered {done}/{total}", file=sys.stderr, flush=True)

    return show


def _sweep(
    args: argparse.Namespace, url: str, api_key: str, items: list[QAItem], modes: list[str]
) -> int:
    if len(modes) != 1:
        raise InvalidRequest("--sweep tries settings on one mode: give --modes NAME", param="modes")
    grid = sweep_module.parse_vary(args.vary)
    rows = []
    tried = sweep_module.points(grid)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "sweep.jsonl").open("w", encoding="utf-8") as handle:
        for number, setting in enumerate(tried, start=1):
            label = f"[{number}/{len(tried)}] {sweep_module.setting_text(setting)}"
            summary = run(
                url,
                api_key,
                items,
                modes,
                args.max_tokens,
                args.concurrency,
                retrieval=setting,
                progress=_progress(label + ": "),
            )[0]
            rows.append(sweep_module.SweepRow(setting, summary))
            for outcome in summary.outcomes:
                handle.write(json.dumps({"setting": setting, **outcome.__dict__}) + "\n")
    report = sweep_module.table(rows)
    header = f"# Retrieval sweep: mode {modes[0]}, {len(items)} questions\n\n"
    (args.out / "sweep.md").write_text(header + report + "\n", encoding="utf-8")
    sweep_module.chart(rows, args.out / "sweep.png")
    print(report)
    best = sweep_module.winner(rows)
    print(f"\nwrote {args.out / 'sweep.md'}, {args.out / 'sweep.png'}, {args.out / 'sweep.jsonl'}")
    if best is None:
        print("no setting was tried as asked: the mode allows only narrower ones (see clipped)")
        return 1
    print(f"winner: {best.label}; set the mode to it with:")
    print("  " + sweep_module.apply_command(args.tenant, modes[0], best.setting))
    return 0


def run(
    url: str,
    api_key: str,
    items: list[QAItem],
    modes: list[str],
    max_tokens: int,
    concurrency: int = 1,
    *,
    retrieval: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ModeSummary]:
    """Every question through every mode; `concurrency` requests in flight at once (the
    engine batches them: faster, but each latency then includes the others' share).
    `retrieval`: sent as each request's `lorag.retrieval`; `progress(done, total)` is called
    as answers come in."""
    summaries = [ModeSummary(mode) for mode in modes]
    headers = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        listed = client.get("/v1/models")
        if listed.status_code == 200:
            cards = {card["id"]: card.get("lorag") for card in listed.json().get("data", [])}
            for summary in summaries:
                summary.kind = kind_of(cards.get(summary.mode)) if summary.mode in cards else ""

        def ask(job: tuple[QAItem, str]) -> Outcome:
            item, mode = job
            body = {
                "model": mode,
                "messages": [{"role": "user", "content": item.question}],
                "temperature": 0,
                "max_tokens": max_tokens,
            }
            if retrieval is not None:
                body["lorag"] = {"retrieval": retrieval}
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
            for done, outcome in enumerate(pool.map(ask, jobs), start=1):
                summaries[modes.index(outcome.mode)].outcomes.append(outcome)
                if progress is not None:
                    progress(done, len(jobs))
    return summaries
