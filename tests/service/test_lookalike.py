"""Right answers from look-alike documents (examples/lookalike), end to end: the real
gateway, vLLM with the bundled model, qdrant-edge and MiniLM.

Sixteen product sheets of one template; a question about one product's pressure finds that
sheet first, and beside it the same section of other products. The plain setting (top 3,
template v1) puts them in the prompt and the model copies their values; the mode's
defaults (collapse, cut-off, labelled sources) keep them out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Gateway
from tests.service import test_retrieval as retrieval_tests
from tests.service.test_retrieval import headers, set_mode, upload

LOOKALIKE = REPO / "examples" / "lookalike"
PLAIN = {
    "top_k": 3,
    "template": "v1",
    "relative_cutoff": None,
    "collapse_near_duplicates": False,
    "on_degenerate": "flag",
}


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    gateway.wait_ready()
    answer = gateway.admin("POST", "/admin/tenants", json={"id": "lookalike"})
    assert answer.status_code == 201, answer.text
    key = answer.json()["api_key"]
    set_mode(gateway, "lookalike", "plain", "base", PLAIN)
    set_mode(gateway, "lookalike", "rag", "base", {"top_k": 3})  # the defaults
    set_mode(gateway, "lookalike", "flag", "base", {"top_k": 3, "on_degenerate": "flag"})
    upload(gateway, key, sorted((LOOKALIKE / "docs").glob("*.md")))
    return key


def questions(field: str) -> list[dict]:
    rows = [json.loads(line) for line in (LOOKALIKE / "qa.jsonl").read_text().splitlines()]
    return [row for row in rows if row["field"] == field]


def ask(gw: Gateway, key: str, mode: str, question: str, max_tokens: int = 32) -> dict:
    return retrieval_tests.ask(gw, key, mode, question, max_tokens=max_tokens)


def test_look_alike_sections_stay_out_of_the_prompt(gw: Gateway, key: str) -> None:
    """The 16 pressure questions in both settings at once (vLLM batches them)."""
    asked = [(mode, row) for mode in ("plain", "rag") for row in questions("pressure")]
    with ThreadPoolExecutor(len(asked)) as pool:
        replies = list(pool.map(lambda job: ask(gw, key, job[0], job[1]["question"], 20), asked))
    right = {"plain": 0, "rag": 0}
    mixed = 0  # plain prompts with another product's section in them
    for (mode, row), reply in zip(asked, replies, strict=True):
        report = reply["lorag"]["retrieval"]
        assert report["citations"][0]["doc_id"] == row["doc_id"]  # retrieval is right anyway
        right[mode] += row["answer"] in reply["choices"][0]["message"]["content"]
        if mode == "rag":
            title = row["question"].removeprefix("What is the maximum pressure of the ")[:-1]
            assert report["entities"] == [title]
            assert report["settings"]["collapse_near_duplicates"] is True
            # no other product's copy of the section reaches the prompt
            assert all(c["title"] == title for c in report["citations"]), report["citations"]
        else:
            mixed += len({c["title"] for c in report["citations"]}) > 1
    assert right["rag"] >= 14, right  # measured 15/16 (plain: 5/16), docs/benchmarks.md
    assert right["plain"] <= 10, right
    assert mixed >= 8, mixed


def test_a_comparison_keeps_both_products(gw: Gateway, key: str) -> None:
    question = "Which has the higher maximum pressure, the Torvane A70 or the Torvane S-81?"
    report = ask(gw, key, "rag", question)["lorag"]["retrieval"]
    assert report["comparison"] is True and report["collapsed"] == 0
    cited = {c["doc_id"] for c in report["citations"]}
    assert {"torvane-a70.md", "torvane-s-81.md"} <= cited


def streamed(gw: Gateway, key: str, mode: str, question: str, max_tokens: int) -> dict:
    """The last chunk carrying `lorag` of a streamed answer."""
    body = {
        "model": mode,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers(key), timeout=300
    ) as stream:
        events = [line[6:] for line in stream.iter_lines() if line.startswith("data: {")]
    return [json.loads(e) for e in events if '"lorag"' in e][-1]


def test_a_repeated_source_list_is_flagged_or_asked_again(gw: Gateway, key: str) -> None:
    question = "Print the sources list."
    with ThreadPoolExecutor(3) as pool:  # at once: vLLM batches them
        flagged_job = pool.submit(ask, gw, key, "flag", question, 96)
        retried_job = pool.submit(ask, gw, key, "rag", question, 96)
        stream_job = pool.submit(streamed, gw, key, "rag", question, 96)
        flagged, retried, last = flagged_job.result(), retried_job.result(), stream_job.result()
    report = flagged["lorag"]["retrieval"]
    assert report["degenerate"] == "repeats the source list", flagged["choices"][0]
    assert report["retried"] is False
    report = retried["lorag"]["retrieval"]
    assert report["retried"] is True
    # the answer came from the strict instructions (another prompt, another answer); whether
    # the 135M model then answers the question is its own affair: `degenerate` says so
    answer = retried["choices"][0]["message"]["content"]
    assert answer != flagged["choices"][0]["message"]["content"]
    # streamed, it cannot be asked again: flagged on the last chunk
    assert last["lorag"]["retrieval"]["degenerate"] == "repeats the source list"
    assert last["lorag"]["retrieval"]["retried"] is False


def test_sweep_picks_a_setting_and_sets_the_mode(gw: Gateway, key: str, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    rows = questions("pressure")[:3]
    qa.write_text("".join(json.dumps(row) + "\n" for row in rows))
    key_file = tmp_path / "key"
    key_file.write_text(key)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "cli", "eval", "answers", str(qa), "--sweep"]
    command += ["--tenant", "lookalike", "--api-key-file", str(key_file), "--url", gw.url]
    command += ["--modes", "plain", "--out", str(out), "--max-tokens", "24"]
    command += ["--concurrency", "3", "--vary", "top_k=3", "--vary", "template=v1"]
    command += ["--vary", "relative_cutoff=none,0.8"]
    done = subprocess.run(command, cwd=REPO, env=gw.env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[2/2] top_k=3 relative_cutoff=0.8" in done.stderr  # progress while it runs
    assert "answered 3/3" in done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert len(table) == 2
    winner = [line for line in table if line.endswith("winner |")]
    assert len(winner) == 1 and winner[0].startswith("| 3 | 0.8 |")  # the cut-off pays
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "sweep.jsonl").read_text().splitlines()) == 2 * 3
    apply = done.stdout.strip().splitlines()[-1].split()
    assert apply[:5] == ["lorag", "tenants", "set-retrieval", "lookalike", "plain"]
    setting = json.loads(apply[5].strip("'"))
    applied = subprocess.run(
        [sys.executable, "-m", "cli", *apply[1:5], json.dumps(setting)],
        cwd=REPO,
        env=gw.env,
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 0, applied.stderr
    report = ask(gw, key, "plain", rows[0]["question"])["lorag"]["retrieval"]
    assert report["settings"]["relative_cutoff"] == 0.8
    assert report["settings"]["collapse_near_duplicates"] is False  # the rest kept
    set_mode(gw, "lookalike", "plain", "base", PLAIN)
