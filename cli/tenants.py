"""`lorag tenants ...`: tenants, their API keys and their modes.

Every leaf command sets `handler(args, settings) -> exit code`. Errors are raised as
`adapters.errors` / `ingest.errors` exceptions: `cli.main` prints `error: <message>` and exits
2 for client errors.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.errors import InvalidInput
from adapters.from_settings import open_registry
from adapters.models import Mode, ModeChange
from adapters.promotion import check_promotion
from cli.arguments import json_object
from cli.output import print_fields, print_json, print_table
from lorag.settings import Settings

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add `lorag tenants` and its commands."""
    group = commands.add_parser(
        "tenants",
        help="create tenants, manage their API keys and modes",
        description="Tenants, their API keys (shown once) and their modes (named choices of "
        "adapter version or the base model).",
    )
    actions = group.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")

    cmd = actions.add_parser("create", help="create a tenant and print its API key once")
    cmd.add_argument("tenant", metavar="ID", help="tenant id (a-z 0-9 _ -)")
    cmd.add_argument("--name", default="", help="display name")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_create_tenant)

    cmd = actions.add_parser("list", help="list tenants")
    cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cmd.set_defaults(handler=_list_tenants)

    cmd = actions.add_parser("show", help="show a tenant and its modes")
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_show_tenant)

    cmd = actions.add_parser(
        "set-mode",
        help="create or repoint a tenant's mode",
        description="Point MODE of tenant ID at TARGET: 'base', NAME@vN, or NAME (its latest "
        "version now; the mode does not follow later versions).",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", help="mode name (a-z 0-9 _ . -)")
    cmd.add_argument("target", metavar="TARGET", help="'base', NAME@vN or NAME")
    default = cmd.add_mutually_exclusive_group()
    default.add_argument(
        "--default",
        dest="default",
        action="store_const",
        const=True,
        help="make it the tenant's default mode (a first mode is the default anyway)",
    )
    default.add_argument(
        "--no-default",
        dest="default",
        action="store_const",
        const=False,
        help="make it not the default (the tenant then has no default mode)",
    )
    cmd.add_argument(
        "--retrieval", type=json_object, help="JSON object of retrieval settings for the mode"
    )
    prompt = cmd.add_mutually_exclusive_group()
    prompt.add_argument(
        "--system-prompt",
        metavar="TEXT",
        help="the mode's instructions, sent as a system message before each request's own "
        "(a prompt-only mode: the base with instructions); '' removes them",
    )
    prompt.add_argument(
        "--system-prompt-file", type=Path, metavar="FILE", help="read the instructions from FILE"
    )
    cmd.add_argument(
        "--force",
        action="store_true",
        help="point at an adapter version that never passed a gate (or failed it); recorded "
        "as forced in the mode's history",
    )
    cmd.set_defaults(handler=_set_mode, default=None)

    cmd = actions.add_parser(
        "history",
        help="every change of a tenant's modes: who, when, from, to, gate verdict",
        description="Recorded mode changes, newest first (kept after a mode is removed).",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", nargs="?", help="only this mode")
    cmd.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_history)

    cmd = actions.add_parser(
        "rollback",
        help="point a mode back at its previous target in one step",
        description="Point MODE of tenant ID at the target it had before its last repoint "
        "(no gate check: it was live before). Running it again undoes it.",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", help="mode name")
    cmd.set_defaults(handler=_rollback)

    cmd = actions.add_parser(
        "set-retrieval",
        help="change some retrieval settings of a tenant's mode (the rest kept)",
        description="Merge SETTINGS (a JSON object, e.g. the winner `lorag eval answers "
        "--sweep` prints) into the retrieval settings of MODE of tenant ID; its target, "
        "default and other settings stay. Settings: see lorag/retrieval_policy.py.",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", help="mode name")
    cmd.add_argument("settings", metavar="SETTINGS", type=json_object, help="JSON object")
    cmd.set_defaults(handler=_set_retrieval)

    cmd = actions.add_parser("remove-mode", help="remove a tenant's mode")
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", help="mode name")
    cmd.set_defaults(handler=_remove_mode)

    cmd = actions.add_parser(
        "rotate-key", help="give a tenant a new API key (the old one stops working)"
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.set_defaults(handler=_rotate_key)

    cmd = actions.add_parser(
        "delete",
        help="delete a tenant, its key, modes and knowledge base (refused while it owns adapters)",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.set_defaults(handler=_delete_tenant)


def _create_tenant(args: argparse.Namespace, settings: Settings) -> int:
    tenant, api_key = open_registry(settings).create_tenant(args.tenant, args.name)
    if args.json:
        print_json({"tenant": tenant.to_dict(), "api_key": api_key})
        return 0
    print(f"created tenant {tenant.id}")
    print(f"API key: {api_key}")
    print("Store this key now: it will not be shown again.")
    return 0


def _list_tenants(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    tenants = registry.list_tenants()
    modes = {t.id: registry.list_modes(t.id) for t in tenants}
    if args.json:
        print_json([t.to_dict() for t in tenants])
        return 0
    print_table(
        ("TENANT", "NAME", "MODES", "DEFAULT", "CREATED"),
        [
            (
                t.id,
                t.display_name or "-",
                len(modes[t.id]),
                next((m.name for m in modes[t.id] if m.is_default), "-"),
                t.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for t in tenants
        ],
        empty="no tenants",
    )
    return 0


def _show_tenant(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    tenant = registry.get_tenant(args.tenant)
    modes = registry.list_modes(args.tenant)
    if args.json:
        print_json({**tenant.to_dict(), "modes": [m.to_dict() for m in modes]})
        return 0
    print_fields(
        [
            ("tenant", tenant.id),
            ("name", tenant.display_name or "-"),
            ("created", tenant.created_at.isoformat(timespec="seconds")),
        ]
    )
    print()
    print_table(
        ("MODE", "TARGET", "DEFAULT", "SYSTEM PROMPT", "RETRIEVAL"),
        [_mode_cells(m) for m in modes],
        empty="no modes: requests use the base model",
    )
    return 0


def actor() -> str:
    """Who makes a change from this command line, for the modes' history."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


def _system_prompt(args: argparse.Namespace) -> str | None:
    if args.system_prompt_file is None:
        return args.system_prompt  # type: ignore[no-any-return]
    try:
        return args.system_prompt_file.read_text(encoding="utf-8").strip()  # type: ignore[no-any-return]
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InvalidInput(
            f"cannot read --system-prompt-file {args.system_prompt_file}: {reason}",
            param="system_prompt_file",
        ) from None


def _set_mode(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.retrieval_policy import normalized

    registry = open_registry(settings)
    retrieval = normalized(args.retrieval)
    system_prompt = _system_prompt(args)
    forced = check_promotion(registry, args.tenant, args.mode, args.target, force=args.force)
    mode = registry.set_mode(
        args.tenant,
        args.mode,
        args.target,
        retrieval=retrieval,
        default=args.default,
        system_prompt=system_prompt,
        actor=actor(),
        forced=forced,
    )
    default = " (default)" if mode.is_default else ""
    note = " (forced: recorded in its history)" if forced else ""
    print(f"{mode.qualified_name} -> {mode.target}{default}{note}")
    return 0


def _set_retrieval(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.retrieval_policy import normalized

    registry = open_registry(settings)
    mode = registry.get_mode(args.tenant, args.mode)
    merged = normalized({**(mode.retrieval or {}), "enabled": True, **args.settings})
    updated = registry.set_mode(
        args.tenant, args.mode, mode.target, retrieval=merged, actor=actor()
    )
    print(f"{updated.qualified_name} -> {updated.target}: {json.dumps(updated.retrieval)}")
    return 0


def _remove_mode(args: argparse.Namespace, settings: Settings) -> int:
    open_registry(settings).remove_mode(args.tenant, args.mode, actor=actor())
    print(f"removed mode {args.tenant}:{args.mode}")
    return 0


def _history(args: argparse.Namespace, settings: Settings) -> int:
    changes = open_registry(settings).mode_history(args.tenant, args.mode, limit=args.limit)
    if args.json:
        print_json([c.to_dict() for c in changes])
        return 0
    print_table(
        ("WHEN", "MODE", "ACTION", "FROM", "TO", "GATE", "BY", "ALSO"),
        [_change_cells(c) for c in changes],
        empty="no recorded changes",
    )
    return 0


def _change_cells(c: ModeChange) -> tuple[str, ...]:
    gate = "-" if c.gate is None else c.gate + (" (FORCED)" if c.forced else "")
    return (
        c.at.strftime("%Y-%m-%d %H:%M:%S"),
        c.mode,
        c.action,
        c.from_target or "-",
        c.to_target or "-",
        gate,
        c.actor,
        ",".join(c.changed) or "-",
    )


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    before = registry.get_mode(args.tenant, args.mode).target
    mode = registry.rollback_mode(args.tenant, args.mode, actor=actor())
    print(f"{mode.qualified_name}: {before} -> {mode.target} (rolled back)")
    return 0


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    api_key = open_registry(settings).rotate_key(args.tenant)
    print(f"new API key for {args.tenant}: {api_key}")
    print("The old key no longer works. Store this one now: it will not be shown again.")
    return 0


def _delete_tenant(args: argparse.Namespace, settings: Settings) -> int:
    """Delete the tenant, then purge its knowledge (documents, chunks, ingest jobs) so that a
    tenant created later with the same id starts empty. While a running server holds the
    knowledge base, the server is asked to do both (it needs LORAG_ADMIN_KEY)."""
    from ingest.errors import StoreLocked
    from ingest.jobs import remove_job_records
    from ingest.knowledge import JOBS_FOLDER, open_existing_knowledge_base

    registry = open_registry(settings)
    registry.get_tenant(args.tenant)  # NotFound before anything is opened
    try:
        knowledge = open_existing_knowledge_base(settings)
    except StoreLocked as locked:
        return _delete_tenant_through_server(args.tenant, settings, locked)
    try:
        registry.delete_tenant(args.tenant)
        if knowledge is not None:
            chunks = knowledge.purge_tenant(args.tenant)
        else:
            chunks = 0
            remove_job_records(settings.knowledge_dir / JOBS_FOLDER, args.tenant)
    finally:
        if knowledge is not None:
            knowledge.close()
    if chunks:
        print(f"deleted {chunks} knowledge-base chunks of {args.tenant}")
    print(f"deleted tenant {args.tenant}")
    return 0


def _delete_tenant_through_server(tenant: str, settings: Settings, locked: Exception) -> int:
    from ingest.errors import StoreLocked
    from ingest.forward import forward_tenant_delete, server_url

    if settings.admin_key is None:
        raise StoreLocked(
            f"{getattr(locked, 'message', locked)}\nIf a lorag server holds it, set "
            "LORAG_ADMIN_KEY (the server's admin key) and the CLI asks the server to delete "
            "the tenant and its knowledge."
        )
    url = server_url(settings.host, settings.port)
    print(f"the knowledge base is held by the server at {url}: asking it", file=sys.stderr)
    answer = forward_tenant_delete(url, settings.admin_key.get_secret_value(), tenant)
    if answer.get("chunks_deleted"):
        print(f"deleted {answer['chunks_deleted']} knowledge-base chunks of {tenant}")
    print(f"deleted tenant {tenant}")
    return 0


def _mode_cells(m: Mode) -> tuple[str, str, str, str, str]:
    retrieval = json.dumps(m.retrieval, sort_keys=True) if m.retrieval else "-"
    prompt = m.system_prompt or "-"
    prompt = prompt if len(prompt) <= 40 else prompt[:37] + "..."
    return m.name, m.target, "yes" if m.is_default else "", prompt, retrieval
