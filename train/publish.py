"""Publishing a finished run: its adapter becomes the next version of a named adapter.

`publish_run` reads the run's gate report (refusing a failed gate, or one that could not judge
the adapter, unless `force`), imports `run_dir/adapter` through the registry (which validates
it against the base model and stores it content-addressed) with origin `train:<run_id>`, the
gate's verdict as the version's gate record, the gate and training numbers as metrics and the
run card attached, and, with `promote="tenant:mode"`, points that tenant's mode at the
new version at once. The gateway reads modes from the registry on every request and loads a
new version under its own name (`name@vN`) on first use: that is the hot swap.

A run continued `--from` a version (`train.parent`) is published with that version's owner
(it carries weights learned on that tenant's data) and names it: `metrics["parent"]`, the
notes. Its gate record keeps the golden files it ran, its parent's included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from adapters import AdapterVersion, BaseModelInfo, Mode, Registry, format_ref
from lorag.names import check_adapter_name, check_mode_name, check_tenant_id
from train.errors import GateFailed, InvalidOption, RunNotFound
from train.gate_report import GateReport
from train.parent import ParentVersion, read_parent
from train.run_card import update_run_card

__all__ = [
    "PublishResult",
    "check_publish_options",
    "parse_promote",
    "publish_owner",
    "publish_run",
]


@dataclass(frozen=True)
class PublishResult:
    version: AdapterVersion
    mode: Mode | None
    forced: bool


def parse_promote(text: str) -> tuple[str, str]:
    """ "tenant:mode" -> (tenant, mode), both checked."""
    tenant, sep, mode = text.partition(":")
    if not sep or not tenant or not mode:
        raise InvalidOption(f"--promote takes TENANT:MODE, got {text!r}", param="promote")
    return check_tenant_id(tenant, param="promote"), check_mode_name(mode, param="promote")


def publish_owner(
    *,
    promote: str | None,
    owner: str | None,
    shared: bool,
    parent: ParentVersion | None = None,
) -> str | None:
    """Who owns the published adapter (`lorag train`): None = shared with every tenant.

    An adapter trained to be promoted to tenant T was trained on T's data: it is T's unless
    `--shared` says otherwise, so no other tenant can be bound to it. `--owner` names the
    owner explicitly; it must be the promote tenant (another tenant's adapter could not
    serve T's mode anyway). Without `--promote` or `--owner` the adapter is shared, as an
    imported one is. An adapter continued `--from` a version owned by T starts from T's
    weights: it is T's, whatever the options (any that say otherwise are refused).
    """
    if shared and owner is not None:
        raise InvalidOption("--shared and --owner contradict each other: give one", param="owner")
    promoted_to = parse_promote(promote)[0] if promote is not None else None
    if parent is not None and parent.owner is not None:
        asked = "--shared" if shared else f"--owner {owner}" if owner else f"--promote {promote}"
        if shared or {owner, promoted_to} - {None, parent.owner}:
            raise InvalidOption(
                f"{parent.ref} is owned by tenant {parent.owner}: an adapter continued from it "
                f"carries weights learned on that tenant's data and stays its own ({asked} "
                "asks for another owner)",
                param="owner",
            )
        return parent.owner
    if shared:
        return None
    if owner is not None:
        check_tenant_id(owner, param="owner")
        if promoted_to is not None and owner != promoted_to:
            raise InvalidOption(
                f"--owner {owner} with --promote {promote}: tenant {promoted_to} cannot use an "
                f"adapter owned by {owner}",
                param="owner",
            )
        return owner
    return promoted_to


def check_publish_options(
    registry: Registry, name: str, promote: str | None, *, owner: str | None = None
) -> None:
    """Fail fast (before any training) on a bad adapter name, an unknown promote tenant or
    owner, or an owner other than the one of the adapter's earlier versions."""
    check_adapter_name(name)
    if promote is not None:
        tenant, _ = parse_promote(promote)
        registry.get_tenant(tenant)  # NotFound (404) if absent
    if owner is not None:
        registry.get_tenant(check_tenant_id(owner, param="owner"))
    earlier = {version.owner for version in registry.list_adapters(name)}
    if earlier and earlier != {owner}:
        current = next(iter(earlier))
        who = f"tenant {current}" if current else "nobody (shared)"
        fix = f"--owner {current}" if current else "--shared"
        raise InvalidOption(
            f"adapter {name!r} is owned by {who}: its new versions must have the same owner "
            f"({fix}, or another --name)",
            param="owner",
        )


def read_gate(run_dir: Path) -> GateReport:
    path = run_dir / "gate.json"
    if not path.is_file():
        raise RunNotFound(f"{run_dir} has no gate report (gate.json): run the gate first")
    return GateReport.from_json(json.loads(path.read_text()))


def publish_run(
    run_dir: Path,
    *,
    registry: Registry,
    base: BaseModelInfo,
    max_rank: int,
    name: str,
    promote: str | None = None,
    force: bool = False,
    owner: str | None = None,
) -> PublishResult:
    """Import the run's adapter as the next version of `name` (see the module docstring)."""
    adapter_dir = run_dir / "adapter"
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise RunNotFound(f"{run_dir} has no finished adapter", param="run_dir")
    check_publish_options(registry, name, promote, owner=owner)
    parent = read_parent(run_dir)
    if parent is not None and parent.owner is not None and owner != parent.owner:
        raise InvalidOption(
            f"{run_dir.name} continues {parent.ref}, owned by tenant {parent.owner}: publish it "
            f"with owner {parent.owner}",
            param="owner",
        )
    gate = read_gate(run_dir)
    if not gate.passed and not force:
        reasons = "\n".join(f"  - {failure}" for failure in gate.failures)
        refused = "refused" if gate.judged else "could not judge"
        raise GateFailed(
            f"the gate {refused} run {run_dir.name}; not published:\n{reasons}\n"
            f"(see {run_dir / 'gate.json'}; publish anyway with --force)",
            param="gate",
        )
    card_path = run_dir / "run_card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    metrics = {
        "run_id": run_dir.name,
        **gate.summary(),
        "gate_forced": bool(force and not gate.passed),
        "train": card.get("metrics", {}),
        "data": card.get("data", {}),
        "run_card": card,
    }
    if parent is not None:
        metrics["parent"] = parent.ref
    verdict = "passed" if gate.passed else "FAILED (published with --force)"
    if not gate.judged:
        verdict = "could not judge (published with --force)"
    method = card.get("hyperparameters", {}).get("method", "sft")
    made = f"lorag train run {run_dir.name}" + (" (DPO)" if method == "dpo" else "")
    notes = made + (f", continuing {parent.ref}" if parent else "") + f"; gate {verdict}"
    version = registry.import_adapter(
        adapter_dir,
        name,
        base=base,
        max_rank=max_rank,
        origin=f"train:{run_dir.name}",
        metrics=metrics,
        notes=notes,
        owner=owner,
        gate=gate.record(f"train:{run_dir.name}"),
    )
    mode = None
    if promote is not None:
        tenant, mode_name = parse_promote(promote)
        mode = registry.set_mode(
            tenant,
            mode_name,
            format_ref(version.name, version.version),
            actor=f"train:{run_dir.name}",
            forced=bool(metrics["gate_forced"]),  # the gate was overridden by --force
        )
    update_run_card(
        run_dir,
        published={
            "name": version.name,
            "version": version.version,
            "served_name": version.served_name,
            "sha256": version.sha256,
            "promoted": promote,
            "forced": metrics["gate_forced"],
        },
    )
    return PublishResult(version, mode, bool(metrics["gate_forced"]))
