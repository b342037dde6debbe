"""The export of a factory adapter through `lorag`, run in the background beside the gateway
tests (tests/train/background.py), in a process of its own:

    python -m tests.train.export_job WORK_DIR BASE_MODEL_DIR

One adapter (every linear layer, rank 8, small B: answers change but stay sentences) is
imported into WORK_DIR/data for tenant acme and exported twice: the merged folder (float32)
with the f16 GGUF, then the q8_0 GGUF (the default type). Each command's exit code and output
go to WORK_DIR/commands.json for `tests/train/test_export.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

__all__ = ["ALL_LINEAR", "main"]

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def main(argv: list[str]) -> None:
    import torch

    from cli.main import main as lorag
    from lorag.settings import BUNDLED_MODEL_NAME
    from tests.factories import make_lora_adapter

    work, base_model_dir = (Path(arg) for arg in argv)
    torch.set_num_threads(1)  # beside the tests' own work
    adapter = make_lora_adapter(
        base_model_dir, work / "lora-export", rank=8, seed=0, targets=ALL_LINEAR, b_std=0.02
    )
    os.environ.update(
        LORAG_DATA_DIR=str(work / "data"),
        LORAG_BASE_MODEL=str(base_model_dir),
        LORAG_MODEL_NAME=BUNDLED_MODEL_NAME,
    )
    merged, f16, q8 = (
        work / "merged",
        work / "f16" / "support.f16.gguf",
        work / "q8" / "support.gguf",
    )
    commands = {
        "tenant": ["tenants", "create", "acme"],
        "import": ["adapters", "import", str(adapter), "--name", "support", "--owner", "acme"],
        "export": ["adapters", "export", "support@v1", "--merged", str(merged), "--dtype"],
        "q8": ["adapters", "export", "support", "--gguf", str(q8)],  # q8_0: the default
        "show": ["adapters", "show", "support@v1", "--json"],
    }
    commands["import"].append("--json")
    commands["export"] += ["float32", "--gguf", str(f16), "--gguf-type", "f16"]
    results = {}
    for name, command in commands.items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = lorag(command)
        results[name] = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
    paths = {"merged": str(merged), "f16": str(f16), "q8": str(q8)}
    (work / "commands.json").write_text(json.dumps({"results": results, "paths": paths}))


if __name__ == "__main__":
    main(sys.argv[1:])
