"""Continuing a published version: `lorag train --from support@v3 --data new.jsonl`.

The parent is a registry version; the child starts from its LoRA weights, so it keeps its
shape (rank, alpha, target modules): a conflicting `--rank`, `--alpha` or `--target-modules`
is refused (`parent_shape`), since the parent's matrices would not fit another shape.

`fetch_parent` reads the version from the registry, checked against the served base model;
`save_parent` copies what the run needs into its folder before training, so training, the
gate and `--resume` never need the registry again:

    parent/parent.json   ref, name, version, sha256, owner, origin, rank, alpha, targets
    parent/adapter/      its adapter_config.json + adapter_model.safetensors
    parent/golden/N/F    the golden files its recorded gate verdict ran (`GateReport.record`)

`start_lora` gives training the parent's weights (or a fresh LoRA when there is no parent).
The gate loads the parent beside the child (`train.parent_gate`): the child's test loss must
beat the parent's as well as the base's, none of the parent's golden checks that the parent
passes may fail, and a DPO run's reference is the parent. The run card's `parent` section and
the published version's metrics name it.

Owner: a child's weights carry its parent's, trained on the parent owner's data, so a child
of an owned version has the same owner (`train.publish.publish_owner`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters import Registry
from adapters.artifact_files import ARTIFACT_FILES, WEIGHTS_FILE
from lorag.names import format_ref, parse_ref
from train.config import TrainConfig
from train.errors import InvalidOption, RunNotFound

__all__ = [
    "PARENT_ADAPTER",
    "ParentVersion",
    "fetch_parent",
    "parent_adapter_dir",
    "parent_golden_files",
    "parent_shape",
    "read_parent",
    "save_parent",
    "start_lora",
]

_FOLDER = "parent"
PARENT_ADAPTER = "parent"  # its peft adapter name where the gate loads it beside the child


@dataclass(frozen=True)
class ParentVersion:
    """What a run keeps of the version it continues (`parent/parent.json`)."""

    ref: str  # "support@v3"
    name: str
    version: int
    sha256: str
    owner: str | None
    origin: str
    base_model: str
    rank: int
    alpha: float
    targets: tuple[str, ...]
    golden_sets: tuple[dict[str, str], ...] = field(default=(), repr=False)  # file, sha256, text
    artifact_dir: str = ""  # the registry's stored folder (only until `save_parent`)

    def card(self) -> dict[str, Any]:
        """The run card's `parent` section (no golden text, no registry path)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("golden_sets", "artifact_dir")}
        data["targets"] = list(self.targets)
        data["golden_files"] = [g["file"] for g in self.golden_sets]
        return data


def fetch_parent(registry: Registry, text: str, *, base_name: str) -> ParentVersion:
    """The version `text` names (`name@vN`, or `name` for its latest), for the served base
    `base_name`; the registry's NotFound when there is no such version."""
    ref = parse_ref(text, param="from")
    version = registry.get_version(ref.name, ref.version)
    if version.base_model != base_name:
        raise InvalidOption(
            f"{version.served_name} was made for the base model {version.base_model!r}, not the "
            f"served {base_name!r}: it cannot be continued on this one",
            param="from",
        )
    gate = version.gate or {}
    golden = tuple(
        {"file": str(g["file"]), "sha256": str(g["sha256"]), "text": str(g["text"])}
        for g in gate.get("golden_sets", [])
    )
    return ParentVersion(
        ref=format_ref(version.name, version.version),
        name=version.name,
        version=version.version,
        sha256=version.sha256,
        owner=version.owner,
        origin=version.origin,
        base_model=version.base_model,
        rank=version.rank,
        alpha=version.alpha,
        targets=tuple(version.targets),
        golden_sets=golden,
        artifact_dir=str(registry.artifact_path(version)),
    )


_SHAPE_OPTIONS = {"rank": "--rank", "alpha": "--alpha", "target_modules": "--target-modules"}


def parent_shape(parent: ParentVersion, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (the TrainConfig options of the command line) with the parent's LoRA shape;
    InvalidOption naming every option that asks for another shape."""
    if not float(parent.alpha).is_integer():
        raise InvalidOption(
            f"{parent.ref} has lora_alpha {parent.alpha}: lorag trains whole-number alphas only",
            param="from",
        )
    shape: dict[str, Any] = {
        "rank": parent.rank,
        "alpha": int(parent.alpha),
        "target_modules": tuple(sorted(parent.targets)),
    }
    conflicts = []
    for key, wanted in shape.items():
        if key not in given:
            continue
        asked = given[key]
        same = set(asked) == set(wanted) if key == "target_modules" else asked == wanted
        if not same:
            shown = ",".join(asked) if key == "target_modules" else asked
            conflicts.append(f"{_SHAPE_OPTIONS[key]} {shown}")
    if conflicts:
        raise InvalidOption(
            f"{', '.join(conflicts)} conflicts with {parent.ref}: a continued adapter starts "
            f"from its parent's weights and keeps its LoRA shape (rank {parent.rank}, alpha "
            f"{int(parent.alpha)}, targets {','.join(shape['target_modules'])}); drop "
            + " and ".join(c.split()[0] for c in conflicts),
            param="from",
        )
    return {**given, **shape}


def save_parent(run_dir: Path, parent: ParentVersion) -> dict[str, Any]:
    """Copy the parent's adapter and golden files into `run_dir/parent/`; return the run
    card's `parent` section."""
    folder = run_dir / _FOLDER
    (folder / "adapter").mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        shutil.copyfile(Path(parent.artifact_dir) / name, folder / "adapter" / name)
    for index, golden in enumerate(parent.golden_sets, start=1):
        path = folder / "golden" / str(index) / Path(golden["file"]).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(golden["text"], encoding="utf-8")
    kept = {k: v for k, v in asdict(parent).items() if k not in ("golden_sets", "artifact_dir")}
    (folder / "parent.json").write_text(json.dumps(kept, indent=2))
    return parent.card()


def read_parent(run_dir: Path) -> ParentVersion | None:
    """The parent a run continues (its files in `run_dir/parent/`), or None."""
    path = run_dir / _FOLDER / "parent.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    data["targets"] = tuple(data["targets"])
    if not (run_dir / _FOLDER / "adapter" / WEIGHTS_FILE).is_file():
        raise RunNotFound(f"{run_dir} continues {data['ref']} but lost its copy of it")
    return ParentVersion(**data)


def parent_adapter_dir(run_dir: Path) -> Path:
    return run_dir / _FOLDER / "adapter"


def parent_golden_files(run_dir: Path) -> list[Path]:
    """The parent's golden files in the run folder, in the order its record listed them."""
    folder = run_dir / _FOLDER / "golden"
    if not folder.is_dir():
        return []
    indexed = sorted(folder.iterdir(), key=lambda p: int(p.name))
    return [file for index in indexed for file in sorted(index.iterdir())]


def start_lora(model: Any, cfg: TrainConfig, run_dir: Path) -> Any:
    """The trainable peft model a run starts from: the parent's weights when the run has one
    (with this run's dropout), else a fresh LoRA of `cfg`'s shape."""
    from peft import LoraConfig, PeftModel

    from train.model_setup import attach_lora

    parent = read_parent(run_dir)
    if parent is None:
        return attach_lora(
            model, rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout, targets=cfg.target_modules
        )
    adapter_dir = parent_adapter_dir(run_dir)
    config = LoraConfig.from_pretrained(str(adapter_dir))
    config.lora_dropout = cfg.dropout
    config.inference_mode = False
    config.base_model_name_or_path = model.config.name_or_path
    return PeftModel.from_pretrained(model, str(adapter_dir), config=config, is_trainable=True)
