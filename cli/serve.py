"""`lorag serve`: the gateway (and, with the embedded engine, vLLM as its child process)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lorag.settings import Settings

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add `lorag serve`."""
    serve = commands.add_parser(
        "serve",
        help="start the gateway (and the embedded vLLM engine)",
        description=(
            "Start the OpenAI-compatible gateway. With the embedded engine (default) it also "
            "prepares the bundled model if needed and starts vLLM as a child process on "
            "127.0.0.1; the gateway is ready when GET /ready answers 200."
        ),
    )
    serve.add_argument("--host", default=None, help="bind address (default: LORAG_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default: LORAG_PORT)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from lorag.base_model import prepare_bundled_model
    from service.app import build_app

    if settings.engine == "embedded" and not settings.base_model:
        prepare_bundled_model(settings)
    app = build_app(settings)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
