"""The embedded engine on this CPU: vLLM dtype and idle behaviour, side by side.

Usage:
    python bench/engine.py [--dtypes float32,bfloat16] [--idle-s 20] [--tokens 64]
    python bench/engine.py --idle-env default,quiet   # vLLM's own / lorag's quiet-idle env

For each configuration it starts one vLLM server on the bundled model (as `lorag serve` does),
then measures:
  idle CPU    % of one core used by the server's whole process group with no request: over
              the `--idle-s` seconds right after a request (where vLLM's worker spin-waits
              unless told not to), and over a later window of the same length (steady idle)
  seq tok/s   one stream at a time, `--tokens` tokens each (what a single user sees)
  8x tok/s    8 concurrent streams (aggregate)
Prints the CPU it ran on first: dtype results differ between CPUs with and without native bf16.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import start_vllm, stop
from lorag.hardware import detect_cpu

PROMPT = "Tell me about the history of bread, in detail."


def group_cpu_seconds(pgid: int) -> float:
    """User+system CPU seconds of every live process in the group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: process group
            total += int(fields[11]) + int(fields[12])  # utime + stime (ticks)
    return total / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(pgid: int, seconds: float) -> float:
    before = group_cpu_seconds(pgid)
    time.sleep(seconds)
    return 100 * (group_cpu_seconds(pgid) - before) / seconds


async def stream_tokens(client: httpx.AsyncClient, url: str, model: str, tokens: int) -> int:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "min_tokens": tokens,
        "temperature": 0.7,
    }
    answer = await client.post(f"{url}/v1/chat/completions", json=body)
    answer.raise_for_status()
    return int(answer.json()["usage"]["completion_tokens"])


async def throughput(url: str, model: str, tokens: int, concurrency: int, rounds: int) -> float:
    async with httpx.AsyncClient(timeout=600) as client:
        started, produced = time.perf_counter(), 0
        for _ in range(rounds):
            counts = await asyncio.gather(
                *(stream_tokens(client, url, model, tokens) for _ in range(concurrency))
            )
            produced += sum(counts)
        return produced / (time.perf_counter() - started)


def measure(dtype: str, env_name: str, args: argparse.Namespace) -> dict[str, float]:
    process, url, model = start_vllm(dtype=dtype, quiet=env_name == "quiet")
    try:
        asyncio.run(throughput(url, model, 8, 1, 1))  # warm-up, then idle right after it
        idle = idle_cpu_percent(process.pid, args.idle_s)
        sequential = asyncio.run(throughput(url, model, args.tokens, 1, args.sequential))
        concurrent = asyncio.run(throughput(url, model, args.tokens, 8, 1))
        time.sleep(args.idle_s)
        idle_after = idle_cpu_percent(process.pid, args.idle_s)
    finally:
        stop(process)
    return {"idle": idle, "idle_after": idle_after, "seq": sequential, "conc": concurrent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--idle-env", default="default,quiet")
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=2, help="sequential requests")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"CPU: {detect_cpu().describe()}, {os.cpu_count()} cores\n")
    print("| dtype | idle env | idle CPU % (after a request / steady) | seq tok/s | 8x tok/s |")
    print("|---|---|---|---|---|")
    for dtype in args.dtypes.split(","):
        for env_name in args.idle_env.split(","):
            try:
                row = measure(dtype, env_name, args)
            except Exception as exc:  # a dtype this CPU build refuses: say so, go on
                print(f"| {dtype} | {env_name} | failed: {str(exc)[:80]} | | |", flush=True)
                continue
            print(
                f"| {dtype} | {env_name} | {row['idle']:.1f} / {row['idle_after']:.1f} | "
                f"{row['seq']:.1f} | {row['conc']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
