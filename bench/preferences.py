"""DPO on a small preference set, before vs after: how often the answer is closer to the
preferred one.

    python bench/preferences.py                              # pure DPO, the --method dpo defaults
    python bench/preferences.py --sft-weight 1 --tag rpo     # + an SFT loss on the preferred
    python bench/preferences.py --lr 1e-3 --threads 2

The pairs are examples/preferences/generate.py's (a support desk: short, polite, signed
answers over verbose, rude or invented ones), 30 topics asked three ways each. Six topics
(18 pairs) are held out entirely; the other 24 (72 pairs) go through `lorag train --method
dpo` as a user's file would: data checks, the seeded 80/10/10 split (its test pairs are new
prompts of trained topics), DPO from the base, the gate. Then the same gate runs on the
held-out topics (`train.adapter_gate.gate_adapter` with those pairs). Printed: one markdown
row per test set with the closer-to-preferred rate of the base and of the adapter, the
preference accuracy, the control NLL rise, training time, CPU and precision, and the run
folder (its gate.json holds every answer).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples" / "preferences"))

HELD_OUT_TOPICS = 6


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def _row(label: str, report: object, seconds: float, precision: str) -> str:
    prefs = report.preferences  # type: ignore[attr-defined]
    control = report.control  # type: ignore[attr-defined]
    return (
        f"| {label} | {prefs['pairs']} | {prefs['closer_reference']:.0%} -> "
        f"{prefs['closer_adapter']:.0%} | {prefs['repeats_reference']:.0%} -> "
        f"{prefs['repeats_adapter']:.0%} | {prefs['accuracy']:.0%} | "
        f"{control['nll_rise']:+.3f}, {len(control['keywords_lost'])} lost | {seconds:.0f} s | "
        f"{precision} | {'pass' if report.passed else 'fail'} |"  # type: ignore[attr-defined]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lr", type=float, default=None, help="default: --method dpo's")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--sft-weight", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="dpo", help="run name")
    args = parser.parse_args()

    import generate

    from lorag.base_model import prepare_bundled_model
    from lorag.settings import Settings
    from train.adapter_gate import gate_adapter
    from train.config import DPO_LR, TrainConfig
    from train.model_setup import pick_device
    from train.pipeline import DataOptions, GateOptions, run_job
    from train.preferences import load_preferences
    from train.prompt_sets import CONTROL_PROMPTS

    base_model = str(prepare_bundled_model(Settings(data_dir=REPO / ".lorag")))
    topics = list(range(len(generate.TOPICS)))
    held_out = set(random.Random(generate.SEED).sample(topics, HELD_OUT_TOPICS))
    work = Path(tempfile.mkdtemp(prefix="bench-preferences-"))
    train_file = _write(work / "prefs.jsonl", generate.build(topics=set(topics) - held_out))
    held_file = _write(work / "held-out.jsonl", generate.build(topics=held_out))
    cfg = TrainConfig(
        method="dpo",
        lr=args.lr or DPO_LR,
        epochs=args.epochs,
        beta=args.beta,
        sft_weight=args.sft_weight,
        batch_size=4,
        threads=args.threads,
    )
    cache = work / "cache"
    started = time.monotonic()
    result = run_job(
        cfg,
        base_model=base_model,
        runs_dir=work / "runs",
        cache_dir=cache,
        data=DataOptions(train_file),
        gate=GateOptions(),
        run_name=args.tag,
        progress=False,
        say=print,
    )
    card = json.loads((result.run_dir / "run_card.json").read_text())
    precision = card["device"]["precision"]
    held = gate_adapter(
        result.run_dir / "adapter",
        base_model=base_model,
        test=None,
        preferences=load_preferences(held_file),
        control=CONTROL_PROMPTS,
        golden=None,
        thresholds=GateOptions().thresholds,
        cache_dir=cache,
        device=pick_device("auto"),
    )
    (result.run_dir / "gate-held-out.json").write_text(json.dumps(held.to_json(), indent=2))
    print(
        f"\n{args.tag}: lr {cfg.lr}, beta {cfg.beta}, sft_weight {cfg.sft_weight}, "
        f"{card['metrics']['steps']} steps of 4 pairs, {args.threads} thread(s), "
        f"{card['device']['precision_reason']}; train {card['train_seconds']:.0f} s, "
        f"whole run {time.monotonic() - started:.0f} s; run folder {result.run_dir}"
    )
    print(
        "| test pairs | n | closer to preferred, base -> adapter | answers that loop | "
        "preference accuracy | control NLL rise, keywords | training | precision | gate |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    train_s = float(card["train_seconds"])
    print(_row("new prompts of trained topics (the gate's split)", result.gate, train_s, precision))
    print(_row("held-out topics", held, train_s, precision))
    for sample in held.preferences["samples"][:4] if held.preferences else []:
        print(f"\n  {sample['prompt']}\n    base:    {sample['reference'][:150]}")
        print(f"    adapter: {sample['adapter'][:150]}")


if __name__ == "__main__":
    main()
