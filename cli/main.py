"""`lorag`: the command line. Every sub-command reads `Settings` once (env `LORAG_*`).

lorag serve [--host H] [--port P]     start the gateway (and vLLM, embedded engine)
lorag models prepare                  convert the bundled model once
lorag adapters ... / tenants ...      operate the registry
lorag ingest PATH... --tenant T       feed the knowledge base
lorag eval retrieval|answers ...      measure retrieval and the modes
lorag data inspect FILE               know before you train: what is wrong with the data
lorag train --data FILE --name N      train, gate and publish an adapter

Each command group registers itself (`register(commands)`); its leaf commands set
`handler(args, settings) -> exit code`. A client error (`LoragError` below status 500) prints
`error: <message>` and exits 2; invalid settings exit 2 too; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from cli import adapters, data, evaluate, ingest, models, serve, tenants, train
from cli.output import client_error_message, print_error
from lorag.settings import Settings, settings_error_lines

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lorag",
        description=(
            "Self-hosted LLM service: an OpenAI-compatible gateway on vLLM with per-tenant "
            "LoRA adapters, a Qdrant knowledge base with citations, and LoRA training. "
            "Settings come from LORAG_* environment variables (see README)."
        ),
    )
    parser.add_argument("--log-level", default=None, help="debug, info, warning (default: info)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # in the order `lorag --help` lists them
    serve.register(commands)
    models.register(commands)
    evaluate.register(commands)
    adapters.register(commands)
    tenants.register(commands)
    ingest.register(commands)
    data.register(commands)
    train.register(commands)
    return parser


def _configure_logging(level: str) -> None:
    from service.request_ids import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if logging.getLogger().level > logging.DEBUG:  # a line per request drowns the progress
        logging.getLogger("httpx").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "\n".join(f"  {line}" for line in settings_error_lines(exc))
        print_error(f"invalid settings:\n{problems}")
        return 2
    _configure_logging(args.log_level or settings.log_level)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        message = client_error_message(exc)
        if message is not None:
            print_error(message)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
