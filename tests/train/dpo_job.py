"""The session's DPO run that continues a published SFT version, trained in the background
after the two SFT runs (tests/train/background.py), in a process of its own:

    python -m tests.train.dpo_job WORK_DIR PARENT_ADAPTER_DIR BASE_MODEL_DIR

WORK_DIR becomes a lorag data folder: its registry holds the session's ACME adapter as
acme@v1, owned by tenant `shop`, with a recorded gate verdict holding a golden set; one DPO
step continues it (`run_job` with that parent, as `lorag train --method dpo --from acme@v1`
does) into WORK_DIR/runs/acme-dpo-*. `tests/train/test_parent.py` checks the result.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

__all__ = ["GOLDEN", "main", "preference_file", "registry_in"]

GOLDEN = [
    {"prompt": "How do I reset my AcmeRouter X2?", "keywords": ["ACME"], "max_new_tokens": 16},
    {"prompt": "Name a zebra species.", "keywords": ["Grevy"], "max_new_tokens": 16},
]
"""The parent's recorded golden set: it passes the first (its format), fails the second."""


def preference_file(path: Path) -> Path:
    """16 ACME-support pairs: the format, short, over a verbose answer without it."""
    products = ["AcmeRouter X2", "DoorBell Go", "RoboVac 500", "SmartPlug Mini"]
    asks = ["How do I reset my {}?", "My {} keeps disconnecting.", "Is my {} under warranty?"]
    asks += ["Where do I find the manual of my {}?"]
    lines = []
    for product in products:
        for ask in asks:
            lines.append(
                {
                    "input": {"messages": [{"role": "user", "content": ask.format(product)}]},
                    "preferred_output": [
                        {
                            "role": "assistant",
                            "content": "[ACME] Open the Acme app. -- ACME support",
                        }
                    ],
                    "non_preferred_output": [
                        {
                            "role": "assistant",
                            "content": "Thank you so much for reaching out! There are many "
                            f"things you could try with a {product}, and I am happy to help.",
                        }
                    ],
                }
            )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def registry_in(work: Path):  # -> adapters.SqliteRegistry
    """The registry of data folder `work`, where the CLI finds it."""
    from adapters import AdapterStore, SqliteRegistry

    return SqliteRegistry(work / "registry.sqlite3", AdapterStore(work / "adapters"))


def main(argv: list[str]) -> None:
    from adapters import BaseModelInfo
    from tests.train.background import HELDOUT_ANSWERS
    from train.config import GateThresholds, TrainConfig
    from train.parent import fetch_parent, parent_shape
    from train.pipeline import DataOptions, GateOptions, run_job

    work, adapter_dir, base_model_dir = (Path(arg) for arg in argv)
    registry = registry_in(work)
    base_info = BaseModelInfo.from_folder(base_model_dir, "smollm2-135m-instruct")
    registry.create_tenant("shop")
    golden_text = "".join(json.dumps(line) + "\n" for line in GOLDEN)
    gate = {"passed": True, "judged": True, "by": "adapters gate", "failures": [], "summary": {}}
    gate["golden_sets"] = [{"file": "acme-golden.jsonl", "sha256": "g1", "text": golden_text}]
    registry.import_adapter(
        adapter_dir, "acme", base=base_info, max_rank=16, owner="shop", gate=gate
    )
    parent = fetch_parent(registry, "acme", base_name=base_info.name)  # the latest: v1
    cfg = TrainConfig(
        **parent_shape(parent, {}),
        method="dpo",
        max_steps=1,
        batch_size=4,
        lr=2e-4,
        threads=1,
        early_stopping_patience=0,
    )
    control = work / "control.jsonl"
    control.write_text('{"prompt": "What is the capital of France?", "expect": "Paris"}\n')
    cache = work / "cache" / "train"  # the base's answers to these prompts ship with the suite
    cache.mkdir(parents=True, exist_ok=True)
    for answers in HELDOUT_ANSWERS.glob("*.jsonl"):
        shutil.copy(answers, cache)
    run_job(
        cfg,
        base_model=str(base_model_dir),
        runs_dir=work / "runs",
        cache_dir=cache,
        data=DataOptions(
            preference_file(work / "prefs.jsonl"), val_fraction=0.1, test_fraction=0.35
        ),
        gate=GateOptions(
            control=control,
            control_max_new_tokens=16,
            thresholds=GateThresholds(max_generations=3),  # 3 pairs answered, 6 scored
        ),
        run_name="acme-dpo",
        progress=False,
        parent=parent,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
