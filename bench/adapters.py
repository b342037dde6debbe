"""Adapters: throughput with requests spread over 1, 4 and 8 adapters, and promotion latency.

Usage:
    python bench/adapters.py [--requests 48] [--concurrency 8] [--tokens 64] [--promotions 20]
                             [--lora-ops vllm,lorag]

A vLLM server (bundled model) and a lorag gateway in front of it, per LoRA ops variant, in one
run: `vllm` = vLLM's own CPU LoRA ops (`VLLM_PLUGINS` names no plugin), `lorag` = lorag's
plugin (`service/engine/cpu_lora_ops.py`, what `lorag serve` runs); on a GPU both are vLLM's.
1. the same workload (concurrent streams of exactly `tokens` tokens) on the base model, on one
   adapter, and spread round-robin over 4 and 8 distinct adapters (all loaded beforehand),
   side by side for each variant;
2. promotion latency (last variant): PUT a tenant's mode to a version never loaded before,
   then the first streamed token of a request in that mode; p50/p99 over `promotions`.
Goals on this CPU: promotion < 1 s; mixed-adapter throughput >= 0.9x single-adapter.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import REPO, start_gateway, start_vllm, stop
from bench.stats import pct
from tests.factories import make_lora_adapter

ADMIN = "bench-admin-key-0123456789"  # 16 characters at least (Settings)
PROMPT = "Write a short story about a lighthouse keeper."


def admin(url: str, method: str, path: str, **kwargs: object) -> dict:
    answer = httpx.request(
        method, url + path, headers={"x-admin-key": ADMIN}, timeout=120, **kwargs
    )
    answer.raise_for_status()
    return answer.json()


async def stream(client: httpx.AsyncClient, model: str, tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "min_tokens": tokens,
        "stream": True,
    }
    started = time.perf_counter()
    first, count = None, 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as answer:
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line:
                first = first or time.perf_counter() - started
                count += 1
    return first or 0.0, count


async def workload(url: str, key: str, modes: list[str], args: argparse.Namespace) -> float:
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one(index: int) -> int:
            async with semaphore:
                return (await stream(client, modes[index % len(modes)], args.tokens))[1]

        started = time.perf_counter()
        tokens = await asyncio.gather(*(one(i) for i in range(args.requests)))
        return sum(tokens) / (time.perf_counter() - started)


async def promotion(url: str, key: str, version: int) -> float:
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        started = time.perf_counter()
        await asyncio.to_thread(
            admin,
            url,
            "PUT",
            "/admin/tenants/bench/modes/promo",
            json={"target": f"promo@v{version}", "force": True},  # random, ungated adapters
        )
        await stream(client, "promo", 1)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--promotions", type=int, default=20)
    parser.add_argument(
        "--lora-ops", default="vllm,lorag", help="LoRA ops variants, side by side: vllm,lorag"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base_dir = REPO / ".lorag" / "models" / "smollm2-135m-instruct"
    folder = Path(tempfile.mkdtemp(prefix="lorag-bench-adapters-"))
    variants = args.lora_ops.split(",")
    op_table()
    rates: dict[str, list[tuple[str, float]]] = {}
    for variant in variants:
        vllm, vllm_url, model = start_vllm({"VLLM_PLUGINS": ""} if variant == "vllm" else None)
        gateway = None
        try:
            gateway, url = start_gateway(
                vllm_url, model, {"LORAG_ADMIN_KEY": ADMIN, "LORAG_MAX_CPU_LORAS": "64"}
            )
            key = setup_tenant(url, base_dir, folder)
            rates[variant] = measure(url, key, args)
            if variant == variants[-1]:
                promotions(url, key, base_dir, folder, args)
        finally:
            for process in (gateway, vllm):
                if process is not None:
                    stop(process)
    print(
        f"\n{args.requests} requests, {args.concurrency} concurrent streams, "
        f"{args.tokens} tokens each; LoRA rank 16 on q,k,v,o; tok/s (vs base model, same ops)\n"
    )
    print("| workload | " + " | ".join(f"{v} ops" for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for row, (label, _) in enumerate(rates[variants[0]]):
        cells = [
            f"{rates[v][row][1]:.0f} ({rates[v][row][1] / rates[v][0][1]:.2f}x)" for v in variants
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


def op_table() -> None:
    """One LoRA shrink (rank 16, 2 adapters in the batch), vLLM's op against lorag's, 1 thread."""
    import torch
    from vllm.lora.ops.torch_ops import lora_ops

    from service.engine import cpu_lora_ops

    torch.set_num_threads(1)
    print("\nLoRA shrink, rank 16, tokens of 2 adapters, 1 thread: ms per call\n")
    print("| tokens | width | vLLM's op | lorag's op |")
    print("|---|---|---|---|")
    for tokens, width in ((1, 576), (32, 576), (500, 576), (500, 1536)):
        weights, x = torch.randn(4, 1, 16, width), torch.randn(tokens, width)
        indices = torch.randint(0, 2, (tokens,))
        cells = []
        for op in (lora_ops.bgmv_shrink, cpu_lora_ops.bgmv_shrink):
            out = torch.zeros(tokens, 16)
            op(x, weights, out, indices, 1.0)  # warm-up: the first call pays allocations
            started = time.perf_counter()
            for _ in range(20):
                op(x, weights, out, indices, 1.0)
            cells.append(f"{(time.perf_counter() - started) / 20 * 1000:.2f}")
        print(f"| {tokens} | {width} | " + " | ".join(cells) + " |")
    torch.set_num_threads(os.cpu_count() or 1)


def setup_tenant(url: str, base_dir: Path, folder: Path) -> str:
    key = admin(url, "POST", "/admin/tenants", json={"id": "bench"})["api_key"]
    admin(url, "PUT", "/admin/tenants/bench/modes/base", json={"target": "base"})
    for index in range(8):
        path = make_lora_adapter(
            base_dir,
            folder / f"a{index}",
            rank=16,
            seed=index,
            targets=("q_proj", "k_proj", "v_proj", "o_proj"),
        )
        admin(url, "POST", "/admin/adapters", json={"path": str(path), "name": f"a{index}"})
        admin(
            url,
            "PUT",
            f"/admin/tenants/bench/modes/m{index}",
            json={"target": f"a{index}@v1", "force": True},
        )
    return str(key)


def measure(url: str, key: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    asyncio.run(workload(url, key, ["base", *[f"m{i}" for i in range(8)]], args))  # warm-up
    return [
        (label, asyncio.run(workload(url, key, modes, args)))
        for label, modes in (
            ("base model only", ["base"]),
            ("1 adapter", ["m0"]),
            ("4 adapters", [f"m{i}" for i in range(4)]),
            ("8 adapters", [f"m{i}" for i in range(8)]),
        )
    ]


def promotions(url: str, key: str, base_dir: Path, folder: Path, args: argparse.Namespace) -> None:
    promo = make_lora_adapter(base_dir, folder / "promo", rank=16, seed=99)
    for _ in range(args.promotions + 1):
        admin(url, "POST", "/admin/adapters", json={"path": str(promo), "name": "promo"})
    asyncio.run(promotion(url, key, 1))
    latencies = [asyncio.run(promotion(url, key, v)) for v in range(2, args.promotions + 2)]
    print(
        f"\npromotion -> first token of the new version, {len(latencies)} promotions "
        "(each to a version never loaded before)\n"
    )
    print("| p50 ms | p99 ms | max ms |")
    print("|---|---|---|")
    print(
        f"| {1000 * statistics.median(latencies):.0f} | {1000 * pct(latencies, 0.99):.0f} "
        f"| {1000 * max(latencies):.0f} |"
    )


if __name__ == "__main__":
    main()
