"""The `lorag adapters ...` and `lorag tenants ...` commands.

`register(subparsers)` adds both command groups to the root parser built by `service.cli`;
every leaf command sets `handler(args, settings) -> exit code`. Errors are raised as
`adapters.errors` exceptions: the root prints `error: <message>` and exits 2 for client errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.from_settings import base_model_info, open_registry
from adapters.models import AdapterVersion, Mode
from lorag.names import parse_ref
from lorag.settings import Settings

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `adapters` and `tenants` command groups."""
    _register_adapters(subparsers)
    _register_tenants(subparsers)


def _register_adapters(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "adapters",
        help="import, list, show and delete LoRA adapter versions",
        description="Adapter versions in the registry. Each import of a name adds version "
        "N+1, served as NAME@vN.",
    )
    commands = group.add_subparsers(dest="adapters_command", required=True, metavar="COMMAND")

    cmd = commands.add_parser(
        "import",
        help="validate a peft LoRA folder and add it as the next version of NAME",
        description="Validate PATH (adapter_config.json + adapter_model.safetensors) against "
        "the base model and the maximum LoRA rank, store it by content, and record it.",
    )
    cmd.add_argument("path", metavar="PATH", type=Path, help="folder holding the peft LoRA adapter")
    cmd.add_argument("--name", required=True, help="adapter name (a-z 0-9 _ . -)")
    cmd.add_argument("--owner", help="tenant id that owns it (default: shared with all tenants)")
    cmd.add_argument("--notes", default="", help="free text kept with the version")
    cmd.add_argument("--metrics", type=_json_object, help="JSON object of evaluation metrics")
    cmd.add_argument("--json", action="store_true", help="print the new version as JSON")
    cmd.set_defaults(handler=_import)

    cmd = commands.add_parser("list", help="list every adapter version")
    cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cmd.set_defaults(handler=_list_adapters)

    cmd = commands.add_parser("show", help="show one adapter version and the modes using it")
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_show_adapter)

    cmd = commands.add_parser(
        "verify", help="re-hash a stored adapter version and compare with its recorded sha256"
    )
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.set_defaults(handler=_verify_adapter)

    cmd = commands.add_parser(
        "delete",
        help="delete one adapter version (refused while a mode uses it)",
        description="Delete NAME@vN and its stored files (kept while another version has "
        "the same content). Its version number is never reused.",
    )
    cmd.add_argument("ref", metavar="NAME@vN", help="adapter version to delete")
    cmd.set_defaults(handler=_delete_adapter)


def _register_tenants(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser(
        "tenants",
        help="create tenants, manage their API keys and modes",
        description="Tenants, their API keys (shown once) and their modes (named choices of "
        "adapter version or the base model).",
    )
    commands = group.add_subparsers(dest="tenants_command", required=True, metavar="COMMAND")

    cmd = commands.add_parser("create", help="create a tenant and print its API key once")
    cmd.add_argument("tenant", metavar="ID", help="tenant id (a-z 0-9 _ -)")
    cmd.add_argument("--name", default="", help="display name")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_create_tenant)

    cmd = commands.add_parser("list", help="list tenants")
    cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cmd.set_defaults(handler=_list_tenants)

    cmd = commands.add_parser("show", help="show a tenant and its modes")
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_show_tenant)

    cmd = commands.add_parser(
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
        "--retrieval", type=_json_object, help="JSON object of retrieval settings for the mode"
    )
    cmd.set_defaults(handler=_set_mode, default=None)

    cmd = commands.add_parser("remove-mode", help="remove a tenant's mode")
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.add_argument("mode", metavar="MODE", help="mode name")
    cmd.set_defaults(handler=_remove_mode)

    cmd = commands.add_parser(
        "rotate-key", help="give a tenant a new API key (the old one stops working)"
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.set_defaults(handler=_rotate_key)

    cmd = commands.add_parser(
        "delete",
        help="delete a tenant, its key, modes and knowledge base (refused while it owns adapters)",
    )
    cmd.add_argument("tenant", metavar="ID", help="tenant id")
    cmd.set_defaults(handler=_delete_tenant)


# --- adapters handlers ---------------------------------------------------------------------
def _import(args: argparse.Namespace, settings: Settings) -> int:
    version = open_registry(settings).import_adapter(
        args.path,
        args.name,
        base=base_model_info(settings),
        max_rank=settings.max_lora_rank,
        metrics=args.metrics,
        notes=args.notes,
        owner=args.owner,
    )
    if args.json:
        _print_json(version.to_dict())
    else:
        print(f"imported {version.served_name} (sha256 {version.sha256[:12]}, rank {version.rank})")
    return 0


def _list_adapters(args: argparse.Namespace, settings: Settings) -> int:
    versions = open_registry(settings).list_adapters()
    if args.json:
        _print_json([v.to_dict() for v in versions])
        return 0
    _print_table(
        ("ADAPTER", "RANK", "TARGETS", "OWNER", "SIZE", "CREATED", "SHA256"),
        [
            (
                v.served_name,
                v.rank,
                ",".join(v.targets),
                v.owner or "-",
                _size(v.size_bytes),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                v.sha256[:12],
            )
            for v in versions
        ],
        empty="no adapters",
    )
    return 0


def _show_adapter(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    ref = parse_ref(args.ref)
    version = registry.get_version(ref.name, ref.version)
    users = registry.modes_using(version.name, version.version)
    path = registry.artifact_path(version)
    if args.json:
        _print_json(
            {**version.to_dict(), "path": str(path), "used_by": [m.qualified_name for m in users]}
        )
        return 0
    used_by = ", ".join(m.qualified_name for m in users) or "-"
    _print_fields([*_version_fields(version), ("path", str(path)), ("used by", used_by)])
    return 0


def _verify_adapter(args: argparse.Namespace, settings: Settings) -> int:
    registry = open_registry(settings)
    ref = parse_ref(args.ref)
    version = registry.get_version(ref.name, ref.version)
    if registry.store.verify(version.sha256):
        print(f"{version.served_name}: ok ({version.sha256})")
        return 0
    print(f"{version.served_name}: DAMAGED: stored files do not match sha256 {version.sha256}")
    return 1


def _delete_adapter(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_ref(args.ref, require_version=True)
    assert ref.version is not None
    open_registry(settings).delete_version(ref.name, ref.version)
    print(f"deleted {ref}")
    return 0


# --- tenants handlers ----------------------------------------------------------------------
def _create_tenant(args: argparse.Namespace, settings: Settings) -> int:
    tenant, api_key = open_registry(settings).create_tenant(args.tenant, args.name)
    if args.json:
        _print_json({"tenant": tenant.to_dict(), "api_key": api_key})
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
        _print_json([t.to_dict() for t in tenants])
        return 0
    _print_table(
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
        _print_json({**tenant.to_dict(), "modes": [m.to_dict() for m in modes]})
        return 0
    _print_fields(
        [
            ("tenant", tenant.id),
            ("name", tenant.display_name or "-"),
            ("created", tenant.created_at.isoformat(timespec="seconds")),
        ]
    )
    print()
    _print_table(
        ("MODE", "TARGET", "DEFAULT", "RETRIEVAL"),
        [_mode_cells(m) for m in modes],
        empty="no modes: requests use the base model",
    )
    return 0


def _set_mode(args: argparse.Namespace, settings: Settings) -> int:
    from lorag.retrieval_policy import normalized

    mode = open_registry(settings).set_mode(
        args.tenant,
        args.mode,
        args.target,
        retrieval=normalized(args.retrieval),
        default=args.default,
    )
    default = " (default)" if mode.is_default else ""
    print(f"{mode.qualified_name} -> {mode.target}{default}")
    return 0


def _remove_mode(args: argparse.Namespace, settings: Settings) -> int:
    open_registry(settings).remove_mode(args.tenant, args.mode)
    print(f"removed mode {args.tenant}:{args.mode}")
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


# --- output --------------------------------------------------------------------------------
def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object ({...})")
    return value


def _version_fields(v: AdapterVersion) -> list[tuple[str, str]]:
    return [
        ("adapter", v.served_name),
        ("base model", v.base_model),
        ("declared base", v.declared_base or "-"),
        ("rank / alpha", f"{v.rank} / {v.alpha:g}"),
        ("targets", ", ".join(v.targets)),
        ("owner", v.owner or "- (shared)"),
        ("origin", v.origin),
        ("created", v.created_at.isoformat(timespec="seconds")),
        ("size", _size(v.size_bytes)),
        ("sha256", v.sha256),
        ("metrics", json.dumps(v.metrics, sort_keys=True) if v.metrics else "-"),
        ("notes", v.notes or "-"),
    ]


def _mode_cells(m: Mode) -> tuple[str, str, str, str]:
    retrieval = json.dumps(m.retrieval, sort_keys=True) if m.retrieval else "-"
    return m.name, m.target, "yes" if m.is_default else "", retrieval


def _print_fields(fields: Sequence[tuple[str, str]]) -> None:
    for label, value in fields:
        print(f"{label + ':':<15}{value}")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    amount = float(size_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"
