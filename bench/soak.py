"""Soak: many clients over several tenants and modes while ingests, deletes and promotions run.

Usage:
    python bench/soak.py [--clients 64] [--seconds 300] [--tenants 3] [--tokens 16]

One vLLM server (bundled model) and one lorag gateway in front of it. Each tenant has a base, an
adapter and a RAG mode and a few documents. `clients` loops send chat requests round-robin over
tenants x modes, streaming every other one, until `seconds` have passed; meanwhile one loop
ingests a document, deletes one and promotes each tenant's adapter mode between v1 and v2,
every few seconds. Reports requests, errors (target 0), latency p50/p99, gateway and engine RSS
after warm-up and at the end (target: growth under 5%), the RSS every 30 s (a leak keeps
growing; what a first use of each worker thread or cache allocates levels off), and the
gateway's open file descriptors. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.adapters import ADMIN, PROMPT, admin
from bench.servers import REPO, start_gateway, start_vllm, stop
from bench.stats import pct
from tests.factories import make_lora_adapter

MODES = ("base", "adapter", "rag")


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def client_loop(url: str, keys: list[str], deadline: float, tokens: int, stats: dict):
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for index in itertools.count():
            if time.monotonic() > deadline:
                return
            key = keys[index % len(keys)]
            mode = MODES[(index // len(keys)) % len(MODES)]
            body = {
                "model": mode,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": tokens,
                "stream": index % 2 == 0,
            }
            started = time.perf_counter()
            try:
                answer = await client.post(
                    "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
                )
                ok = answer.status_code == 200 and (
                    not body["stream"] or answer.text.rstrip().endswith("data: [DONE]")
                )
                stats["status"][answer.status_code if ok else f"bad {answer.status_code}"] += 1
            except httpx.HTTPError as exc:
                stats["status"][type(exc).__name__] += 1
                continue
            stats["latency"].append(time.perf_counter() - started)


async def operations_loop(url: str, keys: list[str], deadline: float, stats: dict) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for index in itertools.count():
            if time.monotonic() > deadline:
                return
            tenant, key = index % len(keys), keys[index % len(keys)]
            headers = {"authorization": f"Bearer {key}"}
            doc = {"doc_id": f"soak-{index}", "text": f"Soak note {index}: the code is {index}."}
            posted = await client.post(
                "/v1/knowledge/documents", json={"documents": [doc]}, headers=headers
            )
            stats["ops"][f"ingest {posted.status_code}"] += 1
            if index >= len(keys):
                gone = await client.delete(
                    f"/v1/knowledge/documents/soak-{index - len(keys)}", headers=headers
                )
                stats["ops"][f"delete {gone.status_code}"] += 1
            target = {"target": f"soak{tenant}@v{1 + (index // len(keys)) % 2}", "force": True}
            promoted = await client.put(
                f"/admin/tenants/t{tenant}/modes/adapter",
                json=target,
                headers={"x-admin-key": ADMIN},
            )
            stats["ops"][f"promote {promoted.status_code}"] += 1
            await asyncio.sleep(3)


async def memory_loop(
    gateway_pid: int, engine_pgid: int, deadline: float, stats: dict, every_s: float = 30.0
) -> None:
    started = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(min(every_s, max(0.0, deadline - time.monotonic())))
        seconds = time.monotonic() - started
        gateway, engine = rss_mb([gateway_pid]), rss_mb(group_pids(engine_pgid))
        stats["memory"].append((seconds, gateway, engine))


async def run(
    url: str, keys: list[str], seconds: float, args: argparse.Namespace, pids: tuple[int, int]
) -> dict:
    stats: dict = {"status": Counter(), "ops": Counter(), "latency": [], "memory": []}
    deadline = time.monotonic() + seconds
    await asyncio.gather(
        operations_loop(url, keys, deadline, stats),
        memory_loop(*pids, deadline, stats),
        *(client_loop(url, keys, deadline, args.tokens, stats) for _ in range(args.clients)),
    )
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument(
        "--warmup", type=float, default=60, help="seconds of traffic before the first reading"
    )
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base_dir = REPO / ".lorag" / "models" / "smollm2-135m-instruct"
    folder = Path(tempfile.mkdtemp(prefix="lorag-soak-"))
    vllm, vllm_url, model = start_vllm()
    gateway = None
    try:
        gateway, url = start_gateway(vllm_url, model, {"LORAG_ADMIN_KEY": ADMIN})
        keys = []
        for tenant in range(args.tenants):
            key = admin(url, "POST", "/admin/tenants", json={"id": f"t{tenant}"})["api_key"]
            for seed in (2 * tenant, 2 * tenant + 1):
                path = make_lora_adapter(base_dir, folder / f"a{seed}", seed=seed)
                body = {"path": str(path), "name": f"soak{tenant}", "owner": f"t{tenant}"}
                admin(url, "POST", "/admin/adapters", json=body)
            modes = {
                "base": {"target": "base"},
                "adapter": {"target": f"soak{tenant}@v1", "force": True},
            }
            modes["rag"] = {"target": "base", "retrieval": {"top_k": 2}}
            for mode, body in modes.items():
                admin(url, "PUT", f"/admin/tenants/t{tenant}/modes/{mode}", json=body)
            keys.append(key)
        pids = (gateway.pid, vllm.pid)
        asyncio.run(run(url, keys, args.warmup, args, pids))
        engine = group_pids(vllm.pid)
        start = (rss_mb([gateway.pid]), rss_mb(engine), open_fds(gateway.pid))
        stats = asyncio.run(run(url, keys, args.seconds, args, pids))
        end = (rss_mb([gateway.pid]), rss_mb(group_pids(vllm.pid)), open_fds(gateway.pid))
    finally:
        for process in (gateway, vllm):
            if process is not None:
                stop(process)
    latency = stats["latency"]
    errors = sum(n for status, n in stats["status"].items() if status != 200)
    print(
        f"\n{args.clients} clients, {args.tenants} tenants x {MODES}, {args.seconds:.0f} s "
        f"after {args.warmup:.0f} s warm-up, {args.tokens} tokens, every other request streamed\n"
    )
    print("| requests | errors | p50 s | p99 s | gateway RSS MB | engine RSS MB | gateway fds |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {sum(stats['status'].values())} | {errors} | {statistics.median(latency):.2f} | "
        f"{pct(latency, 0.99):.2f} | {start[0]:.0f} -> {end[0]:.0f} | "
        f"{start[1]:.0f} -> {end[1]:.0f} | {start[2]} -> {end[2]} |"
    )
    print(f"\nstatuses: {dict(stats['status'])}\noperations: {dict(stats['ops'])}")
    print("\n| after warm-up, s | gateway RSS MB | engine RSS MB |\n|---|---|---|")
    print(f"| 0 | {start[0]:.0f} | {start[1]:.0f} |")
    for seconds, gateway_mb, engine_mb in stats["memory"]:
        print(f"| {seconds:.0f} | {gateway_mb:.0f} | {engine_mb:.0f} |")


if __name__ == "__main__":
    main()
