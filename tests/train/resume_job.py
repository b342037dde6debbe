"""Training stopped after step 2 and resumed, run in the background after the session's other
training work (tests/train/background.py), in a process of its own:

    python -m tests.train.resume_job WORK_DIR BASE_MODEL_DIR

WORK_DIR/full trains 4 steps without a stop (a checkpoint every 2 steps, all kept);
WORK_DIR/resumed holds the same data and only full's step-2 checkpoint, and trains again:
`tests/train/test_training.py` compares the two.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str]) -> None:
    from tests.train.background import ACME_DATA
    from train.dataset import prepare_data
    from train.examples import write_examples
    from train.trainer import TrainConfig, train

    work, base_model = (Path(arg) for arg in argv)
    prepared = prepare_data(ACME_DATA, val_fraction=0.1, seed=0)
    cfg = TrainConfig(
        max_steps=4,
        batch_size=2,  # 8 examples over the 4 steps: resuming needs no more to be shown
        save_every=2,
        keep_checkpoints=0,
        restore_best=False,
        threads=1,
        precision="fp32",
        early_stopping_patience=0,
    )
    full = work / "full"
    write_examples(full / "data" / "train.jsonl", prepared.train[:8])
    write_examples(full / "data" / "validation.jsonl", prepared.validation[:2])
    train(cfg, full, str(base_model), progress=False)
    resumed = work / "resumed"
    shutil.copytree(full / "data", resumed / "data")
    shutil.copytree(full / "checkpoints" / "step-000002", resumed / "checkpoints" / "step-000002")
    train(cfg, resumed, str(base_model), progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
