"""Train -> registry -> vLLM, end to end: `lorag train --promote` against the running gateway,
then the OpenAI client gets the trained format back through the tenant's mode."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, Gateway
from tests.train.conftest import ACME_DATA, MIX_STEPS, follows_format

PROMPTS = [
    "My SmartKettle K1 will not heat water. What should I do?",
    "How do I reset my GardenCam Mini?",
    "Can I return my AcmePhone S after two weeks?",
]


def ask(gw: Gateway, key: str, mode: str, prompt: str) -> str:
    reply = gw.openai(api_key=key).chat.completions.create(
        model=mode,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=96,
    )
    return reply.choices[0].message.content or ""


def test_trained_adapter_is_served_through_the_gateway(gw: Gateway) -> None:
    created = gw.admin("POST", "/admin/tenants", json={"id": "acme-train"})
    assert created.status_code == 201, created.text
    key = created.json()["api_key"]
    gw.admin("PUT", "/admin/tenants/acme-train/modes/plain", json={"target": "base"})
    cache = REPO / ".lorag" / "cache" / "train"  # base answers, if a test run made them
    if cache.is_dir():
        shutil.copytree(cache, gw.data_dir / "cache" / "train", dirs_exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "train", "--data", str(ACME_DATA),
         "--name", "acme-support", "--max-steps", str(MIX_STEPS), "--threads", "1",
         "--promote", "acme-train:support", "--quiet"],
        cwd=REPO, env=gw.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    versions = gw.admin("GET", "/admin/adapters/acme-support").json()["data"]
    assert [v["version"] for v in versions] == [1]
    assert versions[0]["origin"].startswith("train:")
    assert versions[0]["metrics"]["gate_passed"] is True
    answers = [ask(gw, key, "support", prompt) for prompt in PROMPTS]
    assert sum(map(follows_format, answers)) >= 2, answers
    assert not any(follows_format(ask(gw, key, "plain", prompt)) for prompt in PROMPTS)
    assert Path(gw.data_dir / "runs").is_dir()
