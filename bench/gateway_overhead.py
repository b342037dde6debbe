"""Gateway overhead: the same streaming workload sent straight to vLLM and through lorag.

Usage:
    python bench/gateway_overhead.py [--rounds 8] [--concurrency 16] [--tokens 64]
    python bench/gateway_overhead.py --engine-env default    # vLLM without lorag's quiet env

Starts one vLLM server (the bundled model, started as `lorag serve` starts it) and one gateway
in front of it (remote engine), then runs rounds alternating direct / gateway, each round
`concurrency` streams of exactly `tokens` output tokens. Prints throughput and time to first
token (TTFT) side by side, then the engine's idle CPU over the 10 s after the last request.
Targets: throughput ratio >= 0.97, added p50 TTFT <= 5 ms, idle engine CPU near 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine import idle_cpu_percent
from bench.servers import start_gateway, start_vllm, stop
from bench.stats import pct

PROMPT = "Tell me about the history of bread, in detail."


@dataclass
class Side:
    name: str
    ttft: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    errors: int = 0


async def one_stream(client: httpx.AsyncClient, url: str, model: str, tokens: int, side: Side):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "min_tokens": tokens,
        "temperature": 0.7,
        "stream": True,
    }
    started = time.perf_counter()
    first = None
    count = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as answer:
        if answer.status_code != 200:
            side.errors += 1
            return
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            if first is None:
                first = time.perf_counter() - started
            if '"content":"' in line and '"content":""' not in line:
                count += 1
    side.ttft.append(first or 0.0)
    side.tokens += count


async def run_round(url: str, model: str, args: argparse.Namespace, side: Side) -> None:
    async with httpx.AsyncClient(timeout=300) as client:
        started = time.perf_counter()
        await asyncio.gather(
            *(one_stream(client, url, model, args.tokens, side) for _ in range(args.concurrency))
        )
        side.seconds += time.perf_counter() - started


async def main_async(args: argparse.Namespace, vllm_url: str, gateway_url: str, model: str):
    direct, via = Side("direct vLLM"), Side("through lorag")
    await run_round(vllm_url, model, args, Side("warm-up"))
    await run_round(gateway_url, model, args, Side("warm-up"))
    for index in range(args.rounds):
        order = [(vllm_url, direct), (gateway_url, via)]
        if index % 2:
            order.reverse()
        for url, side in order:
            await run_round(url, model, args, side)
    return direct, via


def report(direct: Side, via: Side, args: argparse.Namespace) -> None:
    requests = args.rounds * args.concurrency
    print(
        f"\n{requests} requests per side, {args.concurrency} concurrent streams, "
        f"{args.tokens} output tokens each, rounds interleaved\n"
    )
    print(f"| {'side':<14} | tok/s | TTFT p50 ms | TTFT p99 ms | errors |")
    print("|---|---|---|---|---|")
    for side in (direct, via):
        rate = side.tokens / side.seconds
        print(
            f"| {side.name:<14} | {rate:5.0f} | {1000 * statistics.median(side.ttft):11.1f} | "
            f"{1000 * pct(side.ttft, 0.99):11.1f} | {side.errors:6d} |"
        )
    ratio = (via.tokens / via.seconds) / (direct.tokens / direct.seconds)
    added50 = 1000 * (statistics.median(via.ttft) - statistics.median(direct.ttft))
    added99 = 1000 * (pct(via.ttft, 0.99) - pct(direct.ttft, 0.99))
    print(f"\nthroughput ratio (lorag / direct): {ratio:.3f}   (target >= 0.97)")
    print(f"added TTFT p50: {added50:+.1f} ms   (target <= 5 ms); p99: {added99:+.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--engine-env", choices=("quiet", "default"), default="quiet")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    vllm, vllm_url, model = start_vllm(quiet=args.engine_env == "quiet")
    gateway, gateway_url = None, None
    try:
        gateway, gateway_url = start_gateway(vllm_url, model)
        direct, via = asyncio.run(main_async(args, vllm_url, gateway_url, model))
        report(direct, via, args)
        idle = idle_cpu_percent(vllm.pid, 10.0)
        print(
            f"engine idle CPU over the 10 s after the last request ({args.engine_env} env): "
            f"{idle:.1f}% of one core"
        )
    finally:
        for process in (gateway, vllm):
            if process is not None:
                stop(process)


if __name__ == "__main__":
    main()
