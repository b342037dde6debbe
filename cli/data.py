"""`lorag data inspect FILE`: know before you train (and what `lorag train` runs first).

    lorag data inspect FILE [--format F] [--prompt-column C] [--completion-column C] [--json]

The checks live in `train.inspection`; this module loads the served base model's tokenizer,
prints the report (human-readable, or `--json`) and exits 1 when it holds errors, 0
otherwise. `inspect_before_training` is the same inspection as a step of `lorag train`: it
prints the warnings and refuses the file on errors, before any run folder exists.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.output import print_json
from lorag.settings import Settings
from train.config import TrainConfig
from train.data_formats import FORMATS
from train.errors import InvalidData
from train.findings import SEVERITIES, Finding

if TYPE_CHECKING:
    from cli.arguments import Commands
    from train.inspection import InspectionReport

__all__ = [
    "add_format_options",
    "inspect_before_training",
    "load_served_tokenizer",
    "register",
    "report_lines",
]

_CHECKS = """\
what is checked (errors make `lorag train` refuse the file; warnings are advice):
  records          every record parses, in the format training reads        error
  conflicts        the same prompt with answers that disagree                error
  duplicates       exact and near-duplicate examples                         warning
  lengths          prompt / answer / whole tokens (min, p50, p90, max) under
                   the served tokenizer; longer than --max-seq-len; skewed   warning
  coverage         tokens per word; the most fragmented terms (codes,
                   abbreviations such as "HTN-DM-CKD")                       warning
  task             style, format or knowledge, and whether there are enough
                   examples for it (hundreds for style/format, thousands for
                   knowledge; 500-1,000 clean examples to start)             warning
  template         answers that break the template most answers share        warning
  facts            answers full of facts, which belong in the knowledge
                   base (`lorag ingest`) rather than in an adapter           warning
  personal data    what the scrubber replaces (emails, phones, cards, IBANs) warning

A preference file (OpenAI's format: input, preferred_output, non_preferred_output; for
`lorag train --method dpo`) gets these checks on its preferred conversations, except
conflicts (one prompt may have several pairs), and two of its own:
  reversed pairs   A over B in one pair, B over A in another                 error
  length bias      the preferred answer is the shorter (longer) one in
                   nearly every pair: DPO would learn length                 warning

Every finding names the lines of FILE it concerns. Exit status: 0 no errors, 1 errors,
2 a file that cannot be read at all. `lorag train --no-inspect` skips the inspection."""

_MAX_SEQ_LEN: int = TrainConfig.max_seq_len
_LINES_SHOWN = 12
_WIDTH = 100


def register(commands: Commands) -> None:
    """Add `lorag data` and its `inspect` command."""
    group = commands.add_parser(
        "data",
        help="inspect a training file before training on it",
        description="Training data tools: `lorag data inspect FILE` reports what training "
        "would learn from FILE and what is wrong with it.",
    )
    actions = group.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    cmd = actions.add_parser(
        "inspect",
        help="report duplicates, conflicts, lengths, tokenizer coverage, task kind and "
        "personal data of a training file (lorag train runs it first)",
        description="Know before you train: read FILE as `lorag train` would and report\n"
        "what is wrong with it and what it will teach, counted in tokens of the\n"
        "served base model's tokenizer. `lorag train` runs it first.",
        epilog=_CHECKS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("file", type=Path, metavar="FILE", help="training file (JSONL or CSV)")
    add_format_options(cmd)
    cmd.add_argument(
        "--max-seq-len",
        type=int,
        default=_MAX_SEQ_LEN,
        help="warn about examples longer than this many tokens, as `lorag train "
        f"--max-seq-len` would cut them (default: {_MAX_SEQ_LEN})",
    )
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    cmd.set_defaults(handler=_inspect)


def add_format_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--format, --prompt-column, --completion-column: how to read the file."""
    parser.add_argument(
        "--format",
        dest="data_format",
        choices=FORMATS,
        default="auto",
        help="file format (default: auto = from the file name and the first record)",
    )
    parser.add_argument("--prompt-column", help="CSV: prompt column (default: prompt/question/...)")
    parser.add_argument(
        "--completion-column",
        help="CSV: answer column (default: completion/answer/response/output)",
    )


def load_served_tokenizer(base_model: str) -> Any:
    """The tokenizer of the base model training and serving use (a folder or a cached id)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


def _inspect(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.base_model import prepare_bundled_model, resolve_base_model, served_model_name
    from train.inspection import inspect_file

    def tokenizer() -> Any:
        if settings.base_model is None:
            prepare_bundled_model(settings)
        return load_served_tokenizer(resolve_base_model(settings))

    started = time.monotonic()
    report = inspect_file(
        args.file,
        tokenizer,
        data_format=args.data_format,
        prompt_column=args.prompt_column,
        completion_column=args.completion_column,
        max_seq_len=args.max_seq_len,
    )
    report.tokenizer = served_model_name(settings)
    if args.json:
        print_json(report.to_json())
    else:
        print("\n".join(report_lines(report)))
        print(f"(inspected in {time.monotonic() - started:.1f} s)")
    return 1 if report.errors else 0


def inspect_before_training(args: argparse.Namespace, base_model: str, max_seq_len: int) -> None:
    """`lorag train`'s first step: print the inspection's warnings, refuse on its errors.

    A bad record raises `load_examples`' (or `load_preferences`') own `InvalidData`, as
    training always did."""
    from train.data_formats import load_examples
    from train.inspection import inspect_examples, inspect_preferences
    from train.preferences import load_preferences

    tokenizer = load_served_tokenizer(base_model)
    if getattr(args, "method", None) == "dpo":
        pairs = load_preferences(args.data)
        report = inspect_preferences(pairs, tokenizer, max_seq_len=max_seq_len)
    else:
        examples, _ = load_examples(
            args.data,
            args.data_format,
            prompt_column=args.prompt_column,
            completion_column=args.completion_column,
        )
        report = inspect_examples(examples, tokenizer, max_seq_len=max_seq_len)
    if report.warnings:
        print(
            f"data inspection: {len(report.warnings)} warning(s); "
            f"`lorag data inspect {args.data}` explains them"
        )
        for finding in report.warnings:
            print(f"  warning: {finding.code} ({_lines(finding.lines)}): {finding.message}")
    if report.errors:
        problems = [
            f"{_lines(finding.lines)}: {finding.code}: {finding.message}"
            for finding in report.errors
        ]
        listing = "\n".join(f"  {problem}" for problem in problems)
        raise InvalidData(
            f"{args.data.name}: the data inspection found {len(problems)} error(s), nothing "
            f"was trained (fix them, or train anyway with --no-inspect):\n{listing}",
            param=str(args.data),
            problems=problems,
        )


# --- the human-readable report ------------------------------------------------------------


def report_lines(report: InspectionReport) -> list[str]:
    """The report as a person reads it: the numbers first, then the findings by severity."""
    lines = [_headline(report)]
    if report.lengths is not None:
        lines += ["", *_length_table(report.lengths, report.max_seq_len)]
    if report.task is not None:
        task = report.task
        lines += [
            "",
            f"task:            {task.kind} ({task.reason})",
            f"template:        {_template(task.template, task.template_share)}",
            f"clean examples:  {task.clean_examples} of {report.examples} (unique, without "
            f"conflicts); a {task.kind} task needs {task.recommended:,}+",
        ]
    for severity in SEVERITIES:
        found = report.of(severity)
        if found:
            lines += ["", f"{len(found)} {severity}{'s' if len(found) > 1 else ''}:"]
            for finding in found:
                lines += _finding_lines(finding)
    lines += ["", _verdict(report)]
    return lines


def _headline(report: InspectionReport) -> str:
    tokens = f", tokens of the served tokenizer ({report.tokenizer})" if report.tokenizer else ""
    return f"{report.file}: {report.examples} examples ({report.format} format){tokens}"


def _length_table(lengths: dict[str, Any], max_seq_len: int) -> list[str]:
    rows = [
        ("prompt", lengths["prompt"]),
        ("answer", lengths["answer"]),
        (f"whole (chat template; max_seq_len {max_seq_len})", lengths["whole"]),
    ]
    width = max(len(name) for name, _ in rows)
    header = f"{'tokens':<{width + 2}}" + "".join(f"{k:>7}" for k in ("min", "p50", "p90", "max"))
    table = [header]
    for name, spread in rows:
        values = "".join(f"{spread[k]:>7}" for k in ("min", "p50", "p90", "max"))
        table.append(f"  {name:<{width}}{values}")
    table.append(f"tokens per word: {lengths['tokens_per_word']:.2f} (English prose: about 1.3)")
    return table


def _template(template: str | None, share: float) -> str:
    if template is None:
        return "none (no opening, closing or JSON shape that most answers share)"
    return f"answers {template} ({share:.0%} of them)"


def _finding_lines(finding: Finding) -> list[str]:
    head = f"  {finding.code}" + (f"  {_lines(finding.lines)}" if finding.lines else "")
    body = textwrap.wrap(finding.message, _WIDTH, initial_indent=" " * 4, subsequent_indent=" " * 4)
    return [head, *body]


def _lines(lines: Sequence[int]) -> str:
    """`line 7`, `lines 3, 9, 12`, `lines 1, 2, ... (+40 more)`."""
    if not lines:
        return "whole file"
    shown = ", ".join(str(line) for line in lines[:_LINES_SHOWN])
    more = f", … (+{len(lines) - _LINES_SHOWN} more)" if len(lines) > _LINES_SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


def _verdict(report: InspectionReport) -> str:
    errors, warnings = len(report.errors), len(report.warnings)
    counts = f"{errors} error(s), {warnings} warning(s)"
    if errors:
        return f"{counts}: `lorag train` refuses this file until the errors are fixed"
    return f"{counts}: ready for `lorag train`" + (" (read the warnings)" if warnings else "")
