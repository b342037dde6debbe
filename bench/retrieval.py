"""Retrieval's added latency: the same request in base mode and in two RAG modes, interleaved.

Usage:
    python bench/retrieval.py [--requests 40] [--tokens 16] [--corpus examples/lookalike/docs]
        [--qa examples/lookalike/qa.jsonl]

One vLLM server and one lorag gateway (remote engine); a tenant with a `base` mode, a
`rag-plain` mode (top 3 hybrid, one line per source: retrieval before source selection) and
a `rag` mode (top_k 3, the defaults: relative cut-off, near-duplicate collapse, labelled
sources); the corpus is ingested through the API. Each round sends one question of the QA
file to each mode, one request at a time, with a fixed answer length. Printed: end-to-end
latency p50/p99 per mode, what RAG adds, and the server-side retrieval time (search +
selection + prompt assembly) each RAG mode reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import REPO, start_gateway, start_vllm, stop
from bench.stats import pct

ADMIN = "bench-admin-key-0123456789"  # 16 characters at least (Settings)
RAG_MODES = {
    "rag-plain": {
        "top_k": 3,
        "template": "v1",
        "relative_cutoff": None,
        "collapse_near_duplicates": False,
        "on_degenerate": "flag",
    },
    "rag": {"top_k": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--corpus", type=Path, default=REPO / "examples" / "lookalike" / "docs")
    parser.add_argument("--qa", type=Path, default=REPO / "examples" / "lookalike" / "qa.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vllm, vllm_url, model = start_vllm()
    gateway = None
    try:
        gateway, url = start_gateway(vllm_url, model, {"LORAG_ADMIN_KEY": ADMIN})
        admin = httpx.Client(base_url=url, headers={"x-admin-key": ADMIN}, timeout=120)
        key = admin.post("/admin/tenants", json={"id": "bench"}).json()["api_key"]
        admin.put("/admin/tenants/bench/modes/base", json={"target": "base"})
        for mode, retrieval in RAG_MODES.items():
            body = {"target": "base", "retrieval": retrieval}
            admin.put(f"/admin/tenants/bench/modes/{mode}", json=body)
        client = httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=300)
        files = sorted(p for p in args.corpus.rglob("*") if p.is_file())
        jobs = []
        for path in files:
            answer = client.post(
                "/v1/knowledge/documents", files={"file": (path.name, path.read_bytes())}
            )
            jobs.append(answer.json()["id"])
        for job in jobs:
            while client.get(f"/v1/knowledge/jobs/{job}").json()["status"] not in (
                "succeeded",
                "failed",
            ):
                time.sleep(0.2)
        lines = args.qa.read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line)["question"] for line in lines if line.strip()]
        modes = ["base", *RAG_MODES]
        latency: dict[str, list[float]] = {mode: [] for mode in modes}
        prompt_tokens: dict[str, list[int]] = {mode: [] for mode in modes}
        server_side: dict[str, list[float]] = {mode: [] for mode in RAG_MODES}
        for index in range(args.requests + 4):
            question = questions[index % len(questions)]
            order = modes[index % len(modes) :] + modes[: index % len(modes)]
            for mode in order:
                body = {
                    "model": mode,
                    "messages": [{"role": "user", "content": question}],
                    "max_tokens": args.tokens,
                    "min_tokens": args.tokens,
                    "temperature": 0,
                }
                started = time.perf_counter()
                reply = client.post("/v1/chat/completions", json=body).json()
                seconds = time.perf_counter() - started
                if index < 4:
                    continue  # warm-up
                latency[mode].append(seconds)
                prompt_tokens[mode].append(reply["usage"]["prompt_tokens"])
                if mode in server_side:
                    server_side[mode].append(reply["lorag"]["retrieval"]["seconds"])
        print(
            f"\n{args.requests} requests per mode, one at a time, {args.tokens} output tokens, "
            f"corpus: {len(files)} files, questions: {args.qa.name}\n"
        )
        print(
            "| mode | p50 ms | p99 ms | added p50 ms | mean prompt tokens | "
            "retrieval p50 ms | retrieval p99 ms |"
        )
        print("|---|---|---|---|---|---|---|")
        base50 = statistics.median(latency["base"])
        for mode in modes:
            values = latency[mode]
            inside = server_side.get(mode)
            retrieval = (
                f"{1000 * statistics.median(inside):.1f} | {1000 * pct(inside, 0.99):.1f}"
                if inside
                else "- | -"
            )
            print(
                f"| {mode} | {1000 * statistics.median(values):.0f} | "
                f"{1000 * pct(values, 0.99):.0f} | "
                f"{1000 * (statistics.median(values) - base50):+.0f} | "
                f"{statistics.mean(prompt_tokens[mode]):.0f} | {retrieval} |"
            )
        print(
            "\nretrieval: embed the query, search (hybrid: dense and BM25, fused), choose the "
            "sources, assemble the prompt with the model's tokenizer"
        )
    finally:
        for process in (gateway, vllm):
            if process is not None:
                stop(process)


if __name__ == "__main__":
    main()
