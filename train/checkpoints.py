"""Checkpoints and resumable training state.

A checkpoint is a folder `checkpoints/step-000120/` holding the adapter (peft files), the
optimizer state, the RNG states and `state.json` (the `TrainState`: step, best validation
loss, early-stopping counter, the loss history). Folders are written under a temporary name
and renamed, so a crash never leaves a half checkpoint that `--resume` would pick up.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lorag.folders import write_folder_atomically

__all__ = [
    "ADAPTER_FILES",
    "TrainState",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "save_adapter",
    "save_checkpoint",
]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class TrainState:
    step: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)  # step rows and eval rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        return cls(**data)


def save_adapter(model: Any, folder: Path) -> Path:
    """The LoRA weights in peft's format: adapter_config.json + adapter_model.safetensors."""

    def fill(staging: Path) -> None:
        model.save_pretrained(str(staging), safe_serialization=True, save_embedding_layers=False)
        for extra in staging.iterdir():  # peft may add a README; the artifact is two files
            if extra.name not in ADAPTER_FILES:
                shutil.rmtree(extra) if extra.is_dir() else extra.unlink()

    return write_folder_atomically(folder, fill)


def save_checkpoint(run_dir: Path, model: Any, optimizer: Any, state: TrainState) -> Path:
    def fill(staging: Path) -> None:
        save_adapter(model, staging / "adapter")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, staging / "rng.pt")
        (staging / "state.json").write_text(json.dumps(state.to_json(), indent=1))

    return write_folder_atomically(run_dir / "checkpoints" / f"step-{state.step:06d}", fill)


def latest_checkpoint(run_dir: Path) -> Path | None:
    folder = run_dir / "checkpoints"
    found = sorted(p for p in folder.glob("step-*") if (p / "state.json").is_file())
    return found[-1] if found else None


def load_checkpoint(path: Path, optimizer: Any) -> TrainState:
    """Restore the optimizer and RNG states from `path`; return its training state.

    The adapter weights are loaded separately (`model_setup.load_adapter(model, path /
    "adapter", trainable=True)`) before the optimizer is built.
    """
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return TrainState.from_json(json.loads((path / "state.json").read_text()))


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (keep <= 0 keeps everything)."""
    if keep <= 0:
        return
    found = sorted((run_dir / "checkpoints").glob("step-*"))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
