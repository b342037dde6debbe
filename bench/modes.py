"""Does prompting, retrieval, an adapter, or both pay? Measured on held-out look-alike documents.

Usage:
    python bench/modes.py [--work DIR] [--max-steps 40] [--batch-size 4] [--no-context-fraction 0.1]
        [--top-k 4] [--concurrency 8] [--reuse]

On `examples/lookalike` (16 pump sheets of one template, two per brand, 80 questions), as a
user would do it, every step through the `lorag` command line in one data folder (`--work`):

1. one sheet of each brand goes to the training half, the other to the held-out half; the
   questions follow their sheet;
2. a tenant `eval`; every sheet ingested into its knowledge base (the held-out sheets too:
   serving retrieves from all of them);
3. `lorag train build-raft` on the training half's questions (the right chunk among
   distractors, a share with none), `lorag train` on it: a RAFT adapter, gated, published
   (`--force` when its gate fails: the report says so);
4. five modes: `base`, `prompt` (the base with instructions), `rag` (the base + retrieval),
   `adapter` (the RAFT adapter alone) and `hybrid` (the adapter + retrieval);
5. one vLLM server and a gateway on that data folder; `lorag eval answers` on the held-out
   questions (sheets whose facts the adapter never saw), then on the training half's.

With `--variants`, more modes on the same adapter and knowledge base: `rag-plain` and
`hybrid-plain` (top 4 as retrieved, no cut-off, no near-duplicate collapse, template v1: the
distractors reach the prompt), and two-stage generation, `rag-2s-search` (the draft only widens
the second search) and `rag-2s` / `hybrid-2s` (the final prompt carries the draft to revise
against the sources); `--held-out-only` skips the training half's report.

Printed: both mode reports (accuracy, citation accuracy, latency, tokens, which pays) and
where they were written. `--reuse` keeps a finished step's output (the data folder, the
trained adapter) and runs only what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import REPO, start_gateway, start_vllm, stop
from lorag.base_model import prepare_bundled_model
from lorag.settings import Settings

ADMIN = "bench-admin-key-0123456789"
LOOKALIKE = REPO / "examples" / "lookalike"
INSTRUCTIONS = (
    "You answer questions about industrial pumps from their data sheets. Answer with the "
    "exact value, in one short sentence."
)
RETRIEVAL = {"top_k": 4}


def lorag(env: dict[str, str], *argv: str, capture: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cli", *argv],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"lorag {' '.join(argv)} failed with exit code {done.returncode}")
    return done.stdout or ""


def split_questions(work: Path) -> tuple[Path, Path]:
    """One sheet of each brand for training, the other held out; questions follow sheets."""
    sheets = sorted(p.name for p in (LOOKALIKE / "docs").glob("*.md"))
    brands: dict[str, list[str]] = {}
    for sheet in sheets:
        brands.setdefault(sheet.split("-")[0], []).append(sheet)
    train_docs = {pair[0] for pair in brands.values()}
    train, held_out = work / "qa-train.jsonl", work / "qa-heldout.jsonl"
    with train.open("w") as t, held_out.open("w") as h:
        for line in (LOOKALIKE / "qa.jsonl").read_text().splitlines():
            (t if json.loads(line)["doc_id"] in train_docs else h).write(line + "\n")
    return train, held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lorag-bench-modes"))
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--no-context-fraction", type=float, default=0.1)
    parser.add_argument("--raft-top-k", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=RETRIEVAL["top_k"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--variants", action="store_true", help="plain retrieval, two-stage")
    parser.add_argument("--held-out-only", action="store_true")
    args = parser.parse_args()
    work: Path = args.work
    data = work / "data"
    model_dir = prepare_bundled_model(Settings(data_dir=REPO / ".lorag"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "LORAG_DATA_DIR": str(data),
        "LORAG_BASE_MODEL": str(model_dir),
        "LORAG_MODEL_NAME": model_dir.name,
    }
    work.mkdir(parents=True, exist_ok=True)
    train_qa, held_out_qa = split_questions(work)
    key_file = work / "key"
    if not (args.reuse and key_file.is_file()):
        created = json.loads(lorag(env, "tenants", "create", "eval", "--json", capture=True))
        key_file.write_text(created["api_key"])
        lorag(env, "ingest", str(LOOKALIKE / "docs"), "--tenant", "eval", "--no-progress")
    raft = work / "raft.jsonl"
    if not (args.reuse and raft.is_file()):
        options = ["--top-k", str(args.raft_top_k)]
        options += ["--no-context-fraction", str(args.no_context_fraction)]
        lorag(
            env,
            "train",
            "build-raft",
            str(train_qa),
            "--tenant",
            "eval",
            "--out",
            str(raft),
            *options,
        )
    published = lorag(env, "adapters", "list", "--json", capture=True)
    if not (args.reuse and any(v["name"] == "raft" for v in json.loads(published))):
        options = ["--max-steps", str(args.max_steps), "--lr", str(args.lr), "--quiet"]
        options += ["--batch-size", str(args.batch_size), "--test-fraction", "0.15"]
        # published whatever its gate says (--force): the report below is the measurement;
        # the gate's verdict is printed and recorded with the version
        command = ["train", "--data", str(raft), "--name", "raft", "--owner", "eval", "--force"]
        print(lorag(env, *command, *options, capture=True))
    retrieval = json.dumps({"top_k": args.top_k})
    modes = {
        "base": ["base"],
        "prompt": ["base", "--system-prompt", INSTRUCTIONS],
        "rag": ["base", "--retrieval", retrieval],
        "adapter": ["raft", "--force"],
        "hybrid": ["raft", "--force", "--retrieval", retrieval],
    }
    if args.variants:
        plain = {
            "top_k": args.top_k,
            "relative_cutoff": None,
            "collapse_near_duplicates": False,
            "template": "v1",
        }
        two_stage = {"top_k": args.top_k, "two_stage": True}
        search_only = two_stage | {"revise_draft": False}
        modes |= {
            "rag-plain": ["base", "--retrieval", json.dumps(plain)],
            "hybrid-plain": ["raft", "--force", "--retrieval", json.dumps(plain)],
            "rag-2s-search": ["base", "--retrieval", json.dumps(search_only)],
            "rag-2s": ["base", "--retrieval", json.dumps(two_stage)],
            "hybrid-2s": ["raft", "--force", "--retrieval", json.dumps(two_stage)],
        }
    for mode, options in modes.items():
        lorag(env, "tenants", "set-mode", "eval", mode, *options)
    vllm, vllm_url, model = start_vllm()
    gateway = None
    try:
        gateway, url = start_gateway(
            vllm_url, model, {"LORAG_ADMIN_KEY": ADMIN, "LORAG_DATA_DIR": str(data)}
        )
        halves = [("held-out", held_out_qa), ("training half", train_qa)]
        for name, qa in halves[:1] if args.held_out_only else halves:
            out = work / f"report-{name.split()[0]}"
            print(f"\n## {name} documents ({qa.name})\n")
            report = lorag(
                env,
                "eval",
                "answers",
                str(qa),
                "--tenant",
                "eval",
                "--api-key-file",
                str(key_file),
                "--url",
                url,
                "--modes",
                ",".join(modes),
                "--concurrency",
                str(args.concurrency),
                "--max-tokens",
                str(args.max_tokens),
                "--out",
                str(out),
                capture=True,
            )
            print(report[report.index("| mode") :])
    finally:
        if gateway is not None:
            stop(gateway)
        stop(vllm)


if __name__ == "__main__":
    main()
