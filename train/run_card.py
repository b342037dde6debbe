"""The run card (`run_card.json`) and the loss curve (`loss.png`) written with every run.

The run card is everything needed to know what a run was and reproduce it: data digest and
counts (scrubbing, duplicates, split, general mix), hyperparameters, metrics, the gate's
verdict (added by the pipeline), library versions, device and duration.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["device_description", "library_versions", "plot_losses", "update_run_card"]

_LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "lorag")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_description(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def update_run_card(run_dir: Path, **sections: Any) -> dict[str, Any]:
    """Merge `sections` into run_dir/run_card.json (created if missing); return the card."""
    path = run_dir / "run_card.json"
    card: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    card.update(sections)
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
    temp.replace(path)
    return card


def plot_losses(history: list[dict[str, float]], path: Path, title: str = "") -> None:
    """Training loss per step and validation loss at each evaluation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    train_rows = [row for row in history if "loss" in row]
    eval_rows = [row for row in history if "val_loss" in row]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if train_rows:
        axes.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train")
    if eval_rows:
        axes.plot(
            [r["step"] for r in eval_rows],
            [r["val_loss"] for r in eval_rows],
            marker="o",
            label="validation",
        )
    axes.set_xlabel("step")
    axes.set_ylabel("loss (assistant tokens)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
