"""Routing over two vLLM replicas: cold adapter loads, round-robin vs adapter-aware, and
failed requests while a replica is killed.

Usage:
    python bench/routing.py [--requests 100] [--adapters 8] [--cap 4] [--concurrency 4]
        [--tokens 8]

Two vLLM servers on the bundled model (this machine's CPU; both share its cores) and, per
policy, a fresh lorag gateway (remote engine, both URLs, `LORAG_MAX_CPU_LORAS=cap` adapters
kept per server) with a tenant whose 8 modes each point at their own adapter (random LoRAs:
the weights do not matter here). The same seeded random sequence of requests (each names one
mode) goes through each gateway, `concurrency` at a time; counted: adapter loads the gateway
made (`lorag_adapter_loads`), per 100 requests, and latency. Then, adapter-aware, the same
sequence again while replica 2 is killed after a third of it: failed requests (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import start_gateway, start_vllm, stop
from bench.stats import pct
from tests.factories import make_lora_adapter

ADMIN = "bench-admin-key-0123456789"


def admin(url: str, method: str, path: str, **kwargs: object) -> dict:
    answer = httpx.request(
        method, url + path, headers={"x-admin-key": ADMIN}, timeout=300, **kwargs
    )
    answer.raise_for_status()
    return answer.json()


def loads(url: str) -> int:
    text = httpx.get(url + "/metrics", headers={"x-admin-key": ADMIN}, timeout=30).text
    found = re.search(r"^lorag_adapter_loads_total ([0-9.e+]+)$", text, re.M)
    return int(float(found.group(1))) if found else 0


async def send_all(
    url: str,
    key: str,
    order: list[str],
    concurrency: int,
    tokens: int,
    kill: Callable[[], object] | None,
) -> tuple[list[float], int]:
    """Every request of `order`; (latencies of the answered ones, failed count)."""
    queue = list(enumerate(order))
    latencies: list[float] = []
    failed = 0
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:

        async def worker() -> None:
            nonlocal failed
            while queue:
                index, mode = queue.pop(0)
                if kill is not None and index == len(order) // 3:
                    kill()
                body = {
                    "model": mode,
                    "messages": [{"role": "user", "content": "Say something about pumps."}],
                    "max_tokens": tokens,
                    "temperature": 0,
                }
                started = time.perf_counter()
                answer = await client.post("/v1/chat/completions", json=body)
                if answer.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    failed += 1
                    print(f"  request {index} failed: {answer.status_code} {answer.text[:120]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failed


def gateway_for(urls: list[str], model: str, policy: str, cap: int, folders: list[Path]):
    gateway, url = start_gateway(
        ",".join(urls),
        model,
        {
            "LORAG_ADMIN_KEY": ADMIN,
            "LORAG_ROUTING": policy,
            "LORAG_MAX_CPU_LORAS": str(cap),
            "LORAG_VLLM_PROBE_INTERVAL_S": "1",
        },
    )
    key = admin(url, "POST", "/admin/tenants", json={"id": "bench"})["api_key"]
    for index, folder in enumerate(folders):
        admin(url, "POST", "/admin/adapters", json={"path": str(folder), "name": f"a{index}"})
        body = {"target": f"a{index}@v1", "force": True, "preload": False}
        admin(url, "PUT", f"/admin/tenants/bench/modes/m{index}", json=body)
    return gateway, url, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="lorag-bench-routing-"))
    from bench.servers import REPO
    from lorag.base_model import prepare_bundled_model
    from lorag.settings import Settings

    model_dir = prepare_bundled_model(Settings(data_dir=REPO / ".lorag"))
    folders = [make_lora_adapter(model_dir, work / f"a{i}", seed=i) for i in range(args.adapters)]
    order = [f"m{i}" for i in random.Random(0).choices(range(args.adapters), k=args.requests)]
    replicas = [start_vllm(dtype="float32"), start_vllm(dtype="float32")]
    urls = [url for _, url, _ in replicas]
    model = replicas[0][2]
    rows = []
    try:
        for policy in ("round-robin", "adapter-aware"):
            gateway, url, key = gateway_for(urls, model, policy, args.cap, folders)
            try:
                latencies, failed = asyncio.run(
                    send_all(url, key, order, args.concurrency, args.tokens, None)
                )
                rows.append((policy, loads(url), failed, latencies))
            finally:
                stop(gateway)
            for _, replica_url, _ in replicas:  # a fresh start: unload what this run loaded
                for card in httpx.get(replica_url + "/v1/models", timeout=30).json()["data"]:
                    if card["id"] != model:
                        httpx.post(
                            replica_url + "/v1/unload_lora_adapter",
                            json={"lora_name": card["id"]},
                            timeout=60,
                        )
        gateway, url, key = gateway_for(urls, model, "adapter-aware", args.cap, folders)
        victim = replicas[1][0]
        try:
            latencies, failed = asyncio.run(
                send_all(
                    url,
                    key,
                    order,
                    args.concurrency,
                    args.tokens,
                    lambda: os.killpg(os.getpgid(victim.pid), signal.SIGKILL),
                )
            )
            rows.append(("adapter-aware, replica 2 killed at 1/3", loads(url), failed, latencies))
        finally:
            stop(gateway)
    finally:
        for process, _, _ in replicas:
            stop(process)
    print(
        f"\n{args.requests} requests over {args.adapters} adapters, {len(urls)} replicas keeping "
        f"{args.cap} each, {args.concurrency} at a time, {args.tokens} tokens\n"
    )
    print("| routing | cold loads | per 100 requests | failed | p50 s | p99 s |")
    print("|---|---|---|---|---|---|")
    for policy, count, failed, latencies in rows:
        per_100 = 100 * count / args.requests
        print(
            f"| {policy} | {count} | {per_100:.0f} | {failed} | {pct(latencies, 0.5):.2f} | "
            f"{pct(latencies, 0.99):.2f} |"
        )


if __name__ == "__main__":
    main()
