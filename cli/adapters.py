"""`lorag adapters ...`: import, list, show, verify, gate, export and delete adapter versions.

Every leaf command sets `handler(args, settings) -> exit code`. Errors are raised as
`adapters.errors` exceptions: `cli.main` prints `error: <message>` and exits 2 for client errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.from_settings import base_model_info, open_registry
from adapters.models import AdapterVersion
from cli.adapter_export import register_export
from cli.arguments import json_object
from cli.output import print_fields, print_json, print_table, size
from lorag.names import parse_ref
from lorag.settings import Settings
from train.config import GateThresholds

if TYPE_CHECKING:
    from cli.arguments import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    """Add `lorag adapters` and its commands."""
    group = commands.add_parser(
        "adapters",
        help="import, list, show and delete LoRA adapter versions",
        description="Adapter versions in the registry. Each import of a name adds version "
        "N+1, served as NAME@vN.",
    )
    actions = group.add_subparsers(dest="adapters_command", required=True, metavar="COMMAND")

    cmd = actions.add_parser(
        "import",
        help="validate a peft LoRA folder and add it as the next version of NAME",
        description="Validate PATH (adapter_config.json + adapter_model.safetensors) against "
        "the base model and the maximum LoRA rank, store it by content, and record it.",
    )
    cmd.add_argument("path", metavar="PATH", type=Path, help="folder holding the peft LoRA adapter")
    cmd.add_argument("--name", required=True, help="adapter name (a-z 0-9 _ . -)")
    cmd.add_argument("--owner", help="tenant id that owns it (default: shared with all tenants)")
    cmd.add_argument("--notes", default="", help="free text kept with the version")
    cmd.add_argument("--metrics", type=json_object, help="JSON object of evaluation metrics")
    cmd.add_argument("--json", action="store_true", help="print the new version as JSON")
    cmd.set_defaults(handler=_import)

    cmd = actions.add_parser("list", help="list every adapter version")
    cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cmd.set_defaults(handler=_list_adapters)

    cmd = actions.add_parser("show", help="show one adapter version and the modes using it")
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd.set_defaults(handler=_show_adapter)

    cmd = actions.add_parser(
        "verify", help="re-hash a stored adapter version and compare with its recorded sha256"
    )
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.set_defaults(handler=_verify_adapter)

    cmd = actions.add_parser(
        "delete",
        help="delete one adapter version (refused while a mode uses it)",
        description="Delete NAME@vN and its stored files (kept while another version has "
        "the same content). Its version number is never reused.",
    )
    cmd.add_argument("ref", metavar="NAME@vN", help="adapter version to delete")
    cmd.set_defaults(handler=_delete_adapter)

    _register_gate(actions)
    register_export(actions)


def _register_gate(actions: Commands) -> None:
    cmd = actions.add_parser(
        "gate",
        help="run the training gate on a stored version (imported or trained) and record it",
        description="Load the base model and the stored adapter, compare them on the control "
        "set (forgetting), your golden checks and, with --test, your test examples, print the "
        "report with samples side by side, and record the verdict with the version (`adapters "
        "show`). Exit code 0 when the gate passes, 1 when it fails or cannot judge.",
    )
    cmd.add_argument("ref", metavar="NAME[@vN]", help="adapter version (NAME alone = latest)")
    cmd.add_argument(
        "--golden",
        type=Path,
        metavar="FILE",
        help="golden prompts with checks the adapter must pass (JSONL: prompt or messages, and "
        "keywords, regex, json_schema, forbidden)",
    )
    cmd.add_argument(
        "--control",
        type=Path,
        metavar="FILE",
        help="your own control prompts (JSONL: prompt, optional expect; default: shipped)",
    )
    cmd.add_argument(
        "--test",
        type=Path,
        metavar="FILE",
        help="test examples in a training format, never trained on (chat/completion/alpaca "
        f"JSONL or CSV); fewer than {GateThresholds.min_test_examples} and the gate cannot judge",
    )
    cmd.add_argument(
        "--max-nll-rise",
        type=float,
        default=GateThresholds.max_nll_rise,
        help="allowed rise (nats/token) of the NLL of the base's own control answers "
        f"(default: {GateThresholds.max_nll_rise})",
    )
    cmd.add_argument(
        "--max-keywords-lost",
        type=int,
        default=GateThresholds.max_keywords_lost,
        help=f"control keywords the adapter may lose (default: {GateThresholds.max_keywords_lost})",
    )
    cmd.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    cmd.set_defaults(handler=_gate_adapter)


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
        print_json(version.to_dict())
    else:
        print(f"imported {version.served_name} (sha256 {version.sha256[:12]}, rank {version.rank})")
    return 0


def _list_adapters(args: argparse.Namespace, settings: Settings) -> int:
    versions = open_registry(settings).list_adapters()
    if args.json:
        print_json([v.to_dict() for v in versions])
        return 0
    print_table(
        ("ADAPTER", "RANK", "TARGETS", "OWNER", "SIZE", "CREATED", "SHA256"),
        [
            (
                v.served_name,
                v.rank,
                ",".join(v.targets),
                v.owner or "-",
                size(v.size_bytes),
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
        print_json(
            {**version.to_dict(), "path": str(path), "used_by": [m.qualified_name for m in users]}
        )
        return 0
    used_by = ", ".join(m.qualified_name for m in users) or "-"
    print_fields([*_version_fields(version), ("path", str(path)), ("used by", used_by)])
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


def _gate_adapter(args: argparse.Namespace, settings: Settings) -> int:
    """Gate a stored version like a training run's adapter; the verdict goes to the registry.
    No test set by default: an imported adapter comes without the examples it learned."""
    import shutil

    from lorag.base_model import prepare_bundled_model, resolve_base_model
    from train.adapter_gate import gate_adapter
    from train.data_formats import load_examples
    from train.gate_text import describe_gate
    from train.model_setup import pick_device
    from train.prompt_sets import CONTROL_PROMPTS

    registry = open_registry(settings)
    ref = parse_ref(args.ref)
    version = registry.get_version(ref.name, ref.version)
    test = load_examples(args.test)[0] if args.test is not None else None
    if settings.base_model is None:
        prepare_bundled_model(settings)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = gate_adapter(
        registry.artifact_path(version),
        base_model=resolve_base_model(settings),
        test=test,
        control=args.control or CONTROL_PROMPTS,
        golden=args.golden,
        thresholds=GateThresholds(
            max_nll_rise=args.max_nll_rise, max_keywords_lost=args.max_keywords_lost
        ),
        cache_dir=settings.data_dir / "cache" / "train",
        device=pick_device("auto"),
    )
    print(f"{version.served_name}:", end=" ")
    print(describe_gate(report, width=shutil.get_terminal_size((100, 24)).columns))
    recorded = registry.record_gate(version.name, version.version, report.record("adapters gate"))
    print(f"recorded with {recorded.served_name}: {recorded.gate_status}")
    return 0 if report.passed else 1


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
        ("size", size(v.size_bytes)),
        ("sha256", v.sha256),
        ("gate", _gate_line(v)),
        ("metrics", json.dumps(v.metrics, sort_keys=True) if v.metrics else "-"),
        ("notes", v.notes or "-"),
    ]


def _gate_line(v: AdapterVersion) -> str:
    """The recorded verdict: status, by whom and when, and why it did not pass."""
    if v.gate is None:
        return v.gate_status
    line = f"{v.gate_status} ({v.gate.get('by', '?')}, {v.gate.get('at', '?')})"
    return "; ".join([line, *v.gate.get("failures", [])])
