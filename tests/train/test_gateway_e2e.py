"""Train -> registry -> vLLM, end to end: `lorag train --resume RUN --promote` publishes the
session's real training run (trained once, in `mixed_run`) into the running gateway's
registry, then the OpenAI client gets the trained format back through the tenant's mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import REPO, Gateway
from tests.train.background import TrainedRun
from tests.train.conftest import FORMAT_START, follows_format

PROMPTS = [
    "My SmartKettle K1 will not heat water. What should I do?",
    "How do I reset my GardenCam Mini?",
    "Can I return my AcmePhone S after two weeks?",
]


def ask_all(gw: Gateway, key: str, mode: str, max_tokens: int) -> list[str]:
    """Greedy answers to every prompt, sent at once (vLLM batches them)."""
    client = gw.openai(api_key=key)

    def ask(prompt: str) -> str:
        reply = client.chat.completions.create(
            model=mode,
            messages=[{"role": "user", "content": prompt}],
            temperature=0,
            max_tokens=max_tokens,
        )
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        return list(pool.map(ask, PROMPTS))


def test_trained_adapter_is_served_through_the_gateway(
    gw: Gateway, mixed_run: TrainedRun, tmp_path: Path
) -> None:
    created = gw.admin("POST", "/admin/tenants", json={"id": "acme-train"})
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    gw.admin("PUT", "/admin/tenants/acme-train/modes/plain", json={"target": "base"})
    run_dir = shutil.copytree(mixed_run.run_dir, tmp_path / mixed_run.run_dir.name)
    command = [sys.executable, "-m", "cli", "train", "--resume", str(run_dir)]
    command += ["--name", "acme-support", "--promote", "acme-train:support", "--quiet"]
    done = subprocess.run(
        command, cwd=REPO, env=gw.env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (mixed_run.run_dir / "log.jsonl").read_text()
    assert (run_dir / "log.jsonl").read_text() == log  # a finished run: no step trained again
    assert "precision: " in done.stdout
    versions = gw.admin("GET", "/admin/adapters/acme-support").json()["data"]
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["origin"].startswith("train:")
    assert versions[0]["metrics"]["gate_passed"] is True
    answers = ask_all(gw, key, "support", max_tokens=96)
    assert sum(map(follows_format, answers)) >= 2, answers
    # the format opens with its tag: a few tokens tell whether the base answers in it
    plain = ask_all(gw, key, "plain", max_tokens=8)
    assert not any(answer.strip().startswith(FORMAT_START) for answer in plain), plain
