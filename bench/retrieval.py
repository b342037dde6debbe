"""Retrieval's added latency: the same request in base mode and in RAG mode, interleaved.

Usage:
    python bench/retrieval.py [--requests 40] [--tokens 16] [--corpus examples/knowledge]

One vLLM server and one lorag gateway (remote engine); a tenant with a `base` mode and a `rag`
mode (hybrid search, top_k 4); the corpus is ingested through the API. Each round sends one
question to each mode, one request at a time. Printed: end-to-end latency p50/p99 per mode,
the difference, and the server-side retrieval time (search + prompt assembly) RAG reports.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--corpus", type=Path, default=REPO / "examples" / "knowledge")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vllm, vllm_url, model = start_vllm()
    gateway = None
    try:
        gateway, url = start_gateway(vllm_url, model, {"LORAG_ADMIN_KEY": ADMIN})
        admin = httpx.Client(base_url=url, headers={"x-admin-key": ADMIN}, timeout=120)
        key = admin.post("/admin/tenants", json={"id": "bench"}).json()["api_key"]
        admin.put("/admin/tenants/bench/modes/base", json={"target": "base"})
        admin.put(
            "/admin/tenants/bench/modes/rag", json={"target": "base", "retrieval": {"top_k": 4}}
        )
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
        questions = [
            "How much does the Zorblax 9000 weigh?",
            "Who is the lead engineer of the Pellucid Blender?",
            "How long is the warranty of the Brimstone Toaster?",
            "In which city is the Vortex Kettle made?",
        ]
        latency: dict[str, list[float]] = {"base": [], "rag": []}
        prompt_tokens: dict[str, list[int]] = {"base": [], "rag": []}
        server_side: list[float] = []
        for index in range(args.requests + 4):
            question = questions[index % len(questions)]
            order = ["base", "rag"] if index % 2 else ["rag", "base"]
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
                if mode == "rag":
                    server_side.append(reply["lorag"]["retrieval"]["seconds"])
        print(
            f"\n{args.requests} requests per mode, one at a time, {args.tokens} output tokens, "
            f"corpus: {len(files)} files, top_k 4 hybrid\n"
        )
        print("| mode | p50 ms | p99 ms | mean prompt tokens |")
        print("|---|---|---|---|")
        for mode in ("base", "rag"):
            values = latency[mode]
            print(
                f"| {mode} | {1000 * statistics.median(values):.0f} | "
                f"{1000 * pct(values, 0.99):.0f} | "
                f"{statistics.mean(prompt_tokens[mode]):.0f} |"
            )
        added50 = statistics.median(latency["rag"]) - statistics.median(latency["base"])
        added99 = pct(latency["rag"], 0.99) - pct(latency["base"], 0.99)
        print(
            f"\nadded by RAG: p50 {1000 * added50:+.0f} ms, p99 {1000 * added99:+.0f} ms "
            "(retrieval + the longer prompt's prefill)"
        )
        print(
            f"server-side retrieval (embed query, hybrid search, assemble): p50 "
            f"{1000 * statistics.median(server_side):.1f} ms, p99 "
            f"{1000 * pct(server_side, 0.99):.1f} ms"
        )
    finally:
        for process in (gateway, vllm):
            if process is not None:
                stop(process)


if __name__ == "__main__":
    main()
