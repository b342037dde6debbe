"""Training throughput: tokens/s and peak memory of LoRA steps, printed as a table.

    python bench/train.py                        # CPU: fp32 vs bf16 autocast, bundled model
    python bench/train.py --steps 8 --threads 2
    python bench/train.py --gpu-model PATH       # + GPU: LoRA (bf16) vs QLoRA (nf4) on PATH
                                                 #   (an HF folder, e.g. a 1-2B instruct model)

Each configuration runs in its own subprocess (so peak RSS is its own) through the real
trainer (`train.trainer.train`) on synthetic chat examples, with no validation split. The
GPU section runs only when CUDA is available. tokens/s counts every non-padding token that
went through forward and backward; the first step (warm-up) is included.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_TOPICS = ["router", "thermostat", "camera", "speaker", "vacuum", "kettle", "bulb", "lock"]


def _synthetic_examples(count: int) -> list[dict[str, object]]:
    rows = []
    for i in range(count):
        topic = _TOPICS[i % len(_TOPICS)]
        question = f"My {topic} number {i} stopped working after the update. What should I do?"
        answer = (
            f"Sorry to hear that your {topic} has trouble. Unplug it for ten seconds, plug it "
            f"back in and wait until the light is steady. If it still fails, open the app, "
            f"choose the {topic}, and tap Reset; your settings are restored from the cloud."
        )
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def _child(config: dict[str, object]) -> dict[str, object]:
    """Run one configuration in this process and return its numbers."""
    import torch

    from train.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "bench-run"
        (run_dir / "data").mkdir(parents=True)
        rows = _synthetic_examples(int(config["batch_size"]) * int(config["steps"]))
        (run_dir / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (run_dir / "data" / "validation.jsonl").write_text("")
        cfg = TrainConfig(
            max_steps=int(config["steps"]),
            epochs=1,
            batch_size=int(config["batch_size"]),
            precision=str(config["precision"]),
            quantization=str(config["quantization"]),
            device=str(config["device"]),
            threads=config.get("threads"),  # type: ignore[arg-type]
            restore_best=False,
        )
        result = train(cfg, run_dir, str(config["model"]), progress=False)
    out: dict[str, object] = {
        "steps": result.steps,
        "seconds": result.train_seconds,
        "tokens": result.tokens_seen,
        "tokens_per_s": result.tokens_seen / max(result.train_seconds, 1e-9),
        "s_per_step": result.train_seconds / max(result.steps, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if str(config["device"]).startswith("cuda"):
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _run(config: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[tuple[str, dict[str, object]]], gpu: bool = False) -> str:
    header = f"{'configuration':<34} {'s/step':>7} {'tokens/s':>9} {'peak RSS MB':>12}"
    header += f" {'peak GPU MB':>12}" if gpu else ""
    lines = [header, "-" * len(header)]
    for label, numbers in rows:
        if "error" in numbers:
            lines.append(f"{label:<34} error: {numbers['error']}")
            continue
        line = (
            f"{label:<34} {numbers['s_per_step']:>7.2f} {numbers['tokens_per_s']:>9.0f} "
            f"{numbers['peak_rss_mb']:>12.0f}"
        )
        if gpu:
            line += f" {numbers.get('peak_gpu_mb', 0):>12.0f}"
        lines.append(line)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per configuration")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--model", help="CPU model folder (default: the bundled model)")
    parser.add_argument("--gpu-model", help="HF folder of a 1-2B model for the GPU section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    import torch

    if args.model:
        model = args.model
    else:
        from lorag.base_model import prepare_bundled_model
        from lorag.settings import Settings

        model = str(prepare_bundled_model(Settings(data_dir=REPO / ".lorag")))
    common = {"steps": args.steps, "batch_size": args.batch_size, "model": model}
    cpu_rows = []
    for precision in ("fp32", "bf16"):
        config = {**common, "precision": precision, "quantization": "none", "device": "cpu"}
        config["threads"] = args.threads
        label = f"CPU LoRA r16 {precision}{' autocast' if precision == 'bf16' else ''}"
        cpu_rows.append((label, _run(config)))
    from lorag.hardware import detect_cpu
    from train.model_setup import resolve_precision

    print(
        f"model: {Path(model).name}; {args.steps} steps of {args.batch_size} examples; "
        f"{args.threads} threads\nCPU: {detect_cpu().describe()}; "
        f"precision auto -> {resolve_precision('auto', 'cpu')}"
    )
    print(_table(cpu_rows))
    if not torch.cuda.is_available():
        print("\nGPU section skipped: CUDA is not available.")
        return 0
    if not args.gpu_model:
        print("\nGPU section skipped: pass --gpu-model PATH (an HF folder of a 1-2B model).")
        return 0
    gpu_common = {**common, "model": args.gpu_model, "device": "cuda", "precision": "bf16"}
    gpu_rows = [
        ("GPU LoRA r16 (bf16 base)", _run({**gpu_common, "quantization": "none"})),
        ("GPU QLoRA r16 (nf4 base)", _run({**gpu_common, "quantization": "nf4"})),
    ]
    print(f"\nGPU: {torch.cuda.get_device_name(0)}; model: {Path(args.gpu_model).name}")
    print(_table(gpu_rows, gpu=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
