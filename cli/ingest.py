"""`lorag ingest`: feed files and folders into a tenant's knowledge base.

`register(commands)` adds the command; its handler takes `(args, settings)` and returns the exit
code. The heavy imports (torch, sentence-transformers) happen only when the handler runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from cli.arguments import tenant_id
from ingest.errors import StoreLocked, TenantNotFound
from ingest.models import IngestReport

if TYPE_CHECKING:
    from cli.arguments import Commands
    from lorag.settings import Settings

__all__ = ["SHOWN_SKIPPED", "check_tenant_exists", "print_report", "register", "run_ingest"]

SHOWN_SKIPPED = 10


def register(commands: Commands) -> None:
    """Add `lorag ingest`."""
    parser = commands.add_parser(
        "ingest",
        help="ingest files and folders into a tenant's knowledge base",
        description=(
            "Ingest .txt, .md, .html, .pdf, .docx, .jsonl and .csv files into the knowledge "
            "base of one tenant. Unchanged files are skipped, changed files replace their old "
            "version without a gap. Document ids are paths relative to each folder given. "
            "Exit code 0: all ingested; 1: some files failed (listed); 2: error."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    parser.add_argument(
        "--tenant",
        required=True,
        type=tenant_id,
        help="tenant whose knowledge base gets them (it must exist: lorag tenants create)",
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="also delete documents ingested earlier from these folders whose file is gone",
    )
    parser.add_argument(
        "--doc-id-prefix",
        default="",
        metavar="PREFIX",
        help="prepended to every document id (keeps two folders' ids apart)",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files whose relative path matches (repeatable), e.g. '*.html'",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out files whose relative path matches (repeatable), e.g. '_sources/*'",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for the embedding model (default: half the cores)",
    )
    parser.add_argument(
        "--scrub-pii",
        action="store_true",
        help="replace emails, phone numbers, card numbers (Luhn) and IBANs (mod-97) in the "
        "documents' text, titles and metadata with <EMAIL>, <PHONE>, <CARD>, <IBAN> before "
        "they are stored; the report counts them. Document ids and sources are kept. "
        "LORAG_INGEST_SCRUB_PII=true scrubs every ingest. Turning it on or off rewrites "
        "documents ingested before, even unchanged ones",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    parser.set_defaults(handler=run_ingest)


def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.knowledge import open_knowledge_base

    check_tenant_exists(settings, args.tenant)
    try:
        kb = open_knowledge_base(settings, embed_threads=args.threads)
    except StoreLocked as locked:
        report = _forward(args, settings, locked)
        print_report(report)
        return 1 if report.failed else 0
    try:
        report = kb.ingest_paths(
            args.tenant,
            args.paths,
            sync=args.sync,
            progress=not args.no_progress,
            doc_id_prefix=args.doc_id_prefix,
            include=args.include,
            exclude=args.exclude,
            scrub_pii=args.scrub_pii,
        )
    finally:
        kb.close()
    print_report(report)
    return 1 if report.failed else 0


def check_tenant_exists(settings: Settings, tenant: str) -> None:
    """`TenantNotFound` unless the registry has `tenant`: nothing is ingested for nobody."""
    from adapters.errors import NotFound
    from adapters.from_settings import open_registry

    try:
        open_registry(settings).get_tenant(tenant)
    except NotFound:
        raise TenantNotFound(
            f"tenant {tenant!r} not found: create it first (lorag tenants create {tenant})",
            param="tenant",
        ) from None


def _forward(args: argparse.Namespace, settings: Settings, locked: StoreLocked) -> IngestReport:
    """The store is held by a running gateway: send it the job instead."""
    from ingest.forward import forward_ingest, server_url

    if settings.admin_key is None:
        raise StoreLocked(
            f"{locked.message}\nIf a lorag server holds it, set LORAG_ADMIN_KEY (the server's "
            "admin key) and the CLI sends the ingest job to the server."
        )
    url = server_url(settings.host, settings.port)
    print(f"the knowledge base is held by the server at {url}: sending it the job", file=sys.stderr)
    return forward_ingest(
        url,
        settings.admin_key.get_secret_value(),
        args.tenant,
        args.paths,
        sync=args.sync,
        doc_id_prefix=args.doc_id_prefix,
        include=args.include,
        exclude=args.exclude,
        scrub_pii=args.scrub_pii or settings.ingest_scrub_pii,
    )


def print_report(report: IngestReport, out: TextIO | None = None) -> None:
    """The summary table of an ingest, then failures with reasons."""
    out = out or sys.stdout
    rate = report.chunks / report.seconds if report.seconds > 0 else 0.0
    rows = [
        ("added", len(report.added)),
        ("updated", len(report.updated)),
        ("unchanged", len(report.unchanged)),
        ("deleted", len(report.deleted)),
        ("failed", len(report.failed)),
        ("skipped", len(report.skipped)),
    ]
    print(f"{'documents':<10} {'count':>7}", file=out)
    for name, count in rows:
        print(f"{name:<10} {count:>7}", file=out)
    print(
        f"{report.chunks} chunks written in {report.seconds:.1f} s ({rate:.1f} chunks/s)",
        file=out,
    )
    if report.scrubbed is not None:
        found = ", ".join(f"{count} {kind}" for kind, count in report.scrubbed.items())
        print(f"personal data scrubbed: {found or 'none found'}", file=out)
    if report.interrupted:
        print("interrupted: the ingest stopped before the end", file=out)
    if report.failed:
        print("\nfailed:", file=out)
        for name, reason in report.failed:
            print(f"  {name}: {reason}", file=out)
    if report.skipped:
        print(f"\nskipped ({len(report.skipped)}):", file=out)
        for name, reason in report.skipped[:SHOWN_SKIPPED]:
            print(f"  {name}: {reason}", file=out)
        if len(report.skipped) > SHOWN_SKIPPED:
            print(f"  ... and {len(report.skipped) - SHOWN_SKIPPED} more", file=out)
