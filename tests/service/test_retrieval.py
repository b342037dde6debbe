"""Knowledge API and retrieval in the serving path: real gateway, vLLM, qdrant-edge, MiniLM."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Gateway, free_port, wait_job
from tests.factories import make_lora_adapter

FACT_DOC = {
    "doc_id": "zorblax-sheet",
    "title": "Zorblax 9000 product sheet",
    "text": "The Zorblax 9000 is a coffee grinder made by Quenta Labs. It weighs 4471 grams.",
}
QUESTION = "How much does the Zorblax 9000 weigh?"


@dataclass
class Tenants:
    a: str
    b: str


def headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def ingest(gw: Gateway, key: str, documents: list[dict], **extra: object) -> dict:
    answer = httpx.post(
        f"{gw.url}/v1/knowledge/documents",
        json={"documents": documents, **extra},
        headers=headers(key),
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    return wait_job(gw, key, answer.json()["id"])


def upload(gw: Gateway, key: str, paths: list[Path]) -> None:
    """Markdown files uploaded as files, their jobs queued together and waited for."""
    jobs = [
        httpx.post(
            f"{gw.url}/v1/knowledge/documents",
            files={"file": (path.name, path.read_bytes(), "text/markdown")},
            headers=headers(key),
        ).json()["id"]
        for path in paths
    ]
    for job in jobs:
        wait_job(gw, key, job)


def ask(gw: Gateway, key: str, mode: str, question: str = QUESTION, **extra: object) -> dict:
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={
            "model": mode,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 48,
            **extra,
        },
        headers=headers(key),
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def set_mode(gw: Gateway, tenant: str, mode: str, target: str, retrieval: dict | None) -> None:
    body = {"target": target, "retrieval": retrieval, "force": True}  # ungated test adapters
    answer = gw.admin("PUT", f"/admin/tenants/{tenant}/modes/{mode}", json=body)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def tenants(gateway: Gateway) -> Tenants:
    gateway.wait_ready()
    keys = {}
    for tenant in ("kb-a", "kb-b"):
        answer = gateway.admin("POST", "/admin/tenants", json={"id": tenant})
        assert answer.status_code == 201, answer.text
        keys[tenant] = answer.json()["api_key"]
        set_mode(gateway, tenant, "rag", "base", {"top_k": 3})
        set_mode(gateway, tenant, "plain", "base", None)
    set_mode(gateway, "kb-a", "strict", "base", {"top_k": 3, "allow_request_override": False})
    set_mode(gateway, "kb-a", "two-stage", "base", {"top_k": 3, "two_stage": True})
    return Tenants(keys["kb-a"], keys["kb-b"])


@pytest.fixture
def fact(gw: Gateway, tenants: Tenants) -> str:
    ingest(gw, tenants.a, [FACT_DOC])
    return FACT_DOC["doc_id"]


def test_fresh_fact_is_used_and_cited(gw: Gateway, tenants: Tenants, fact: str) -> None:
    reply = ask(gw, tenants.a, "rag")
    report = reply["lorag"]["retrieval"]
    assert report["status"] == "ok"
    assert report["citations"][0]["doc_id"] == fact
    assert "4471" in reply["choices"][0]["message"]["content"]
    # the base model alone does not know it
    plain = ask(gw, tenants.a, "plain")
    assert "4471" not in plain["choices"][0]["message"]["content"]
    assert "lorag" not in plain


def test_other_tenant_never_sees_the_document(gw: Gateway, tenants: Tenants, fact: str) -> None:
    reply = ask(gw, tenants.b, "rag")
    report = reply["lorag"]["retrieval"]
    assert all(c["doc_id"] != fact for c in report["citations"])
    assert "4471" not in reply["choices"][0]["message"]["content"]
    listed = httpx.get(f"{gw.url}/v1/knowledge/documents", headers=headers(tenants.b)).json()
    assert fact not in [d["doc_id"] for d in listed["data"]]
    found = httpx.post(
        f"{gw.url}/v1/knowledge/search", json={"query": QUESTION}, headers=headers(tenants.b)
    ).json()
    assert all(hit["doc_id"] != fact for hit in found["data"])
    gone = httpx.delete(f"{gw.url}/v1/knowledge/documents/{fact}", headers=headers(tenants.b))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "document_not_found"
    still = httpx.get(f"{gw.url}/v1/knowledge/documents", headers=headers(tenants.a)).json()
    assert fact in [d["doc_id"] for d in still["data"]]  # b's delete left a's document alone


def test_streaming_carries_the_same_citations(gw: Gateway, tenants: Tenants, fact: str) -> None:
    # the same fact under a markdown heading: its citation names the section
    sheet = {**FACT_DOC, "text": f"## Specifications\n\n{FACT_DOC['text']}"}
    ingest(gw, tenants.a, [sheet])
    plain = ask(gw, tenants.a, "rag")["lorag"]["retrieval"]
    stream = gw.openai(api_key=tenants.a).chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=48,
        stream=True,
    )
    chunks = list(stream)
    # a naive client reads choices[0] of every chunk: none lacks it
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "4471" in text
    extra = [c for c in chunks if (c.model_extra or {}).get("lorag")]
    assert len(extra) == 1 and extra[0] is chunks[-1]
    assert extra[0].choices[0].finish_reason is not None
    streamed = extra[0].model_extra["lorag"]["retrieval"]
    assert streamed["citations"] == plain["citations"]
    [cited] = [c for c in streamed["citations"] if c["doc_id"] == fact]
    assert "Specifications" in cited["section"] and cited["page"] is None


def test_deleted_fact_is_no_longer_cited(gw: Gateway, tenants: Tenants, fact: str) -> None:
    gone = httpx.delete(f"{gw.url}/v1/knowledge/documents/{fact}", headers=headers(tenants.a))
    assert gone.status_code == 200
    report = ask(gw, tenants.a, "rag")["lorag"]["retrieval"]
    assert all(c["doc_id"] != fact for c in report["citations"])


def test_nothing_retrieved_says_so(gw: Gateway, tenants: Tenants) -> None:
    for doc in httpx.get(f"{gw.url}/v1/knowledge/documents", headers=headers(tenants.b)).json()[
        "data"
    ]:
        httpx.delete(f"{gw.url}/v1/knowledge/documents/{doc['doc_id']}", headers=headers(tenants.b))
    report = ask(gw, tenants.b, "rag")["lorag"]["retrieval"]
    assert report["status"] == "no_results"
    assert report["citations"] == []


def test_request_may_narrow_but_only_when_allowed(gw: Gateway, tenants: Tenants) -> None:
    docs = [
        {"doc_id": f"note-{i}", "text": f"Zorblax note {i}: the grinder has {i} burrs."}
        for i in range(4)
    ]
    ingest(gw, tenants.a, docs)
    narrowed = ask(gw, tenants.a, "rag", lorag={"retrieval": {"top_k": 1}})
    assert len(narrowed["lorag"]["retrieval"]["citations"]) == 1
    filtered = ask(gw, tenants.a, "rag", lorag={"retrieval": {"filter": {"doc_id": "note-2"}}})
    assert [c["doc_id"] for c in filtered["lorag"]["retrieval"]["citations"]] == ["note-2"]
    refused = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={
            "model": "strict",
            "messages": [{"role": "user", "content": "x"}],
            "lorag": {"retrieval": {"top_k": 1}},
        },
        headers=headers(tenants.a),
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "lorag.retrieval"


def test_two_stage_generation(gw: Gateway, tenants: Tenants, fact: str) -> None:
    report = ask(gw, tenants.a, "two-stage")["lorag"]["retrieval"]
    assert report["stages"] == 2
    assert report["draft"]
    assert fact in [c["doc_id"] for c in report["citations"]]


def test_prompt_fits_the_context_with_50_long_chunks(gw: Gateway, tenants: Tenants) -> None:
    answer = gw.admin("POST", "/admin/tenants", json={"id": "kb-budget"})
    key = answer.json()["api_key"]
    # fifty chunks that differ only in their number: all kept (the budget is under test)
    unselective = {"top_k": 50, "collapse_near_duplicates": False, "relative_cutoff": None}
    set_mode(gw, "kb-budget", "rag", "base", unselective)
    filler = " ".join(["The Zorblax grinder manual explains burr care and cleaning."] * 12)
    ingest(gw, key, [{"doc_id": f"manual-{i}", "text": f"Part {i}. {filler}"} for i in range(50)])
    # the budget reserves all 300 tokens; the answer may stop early (saves minutes on a CPU)
    question = "How do I clean the Zorblax grinder?"
    reply = ask(gw, key, "rag", question, max_tokens=300, stop=["."])
    report = reply["lorag"]["retrieval"]
    assert report["dropped_for_budget"] > 0
    assert 0 < len(report["citations"]) < 50
    assert reply["usage"]["prompt_tokens"] + 300 <= 2048


def test_file_upload_is_ingested(gw: Gateway, tenants: Tenants) -> None:
    content = b"# Warranty\n\nThe Zorblax 9000 warranty lasts 27 months from purchase.\n"
    answer = httpx.post(
        f"{gw.url}/v1/knowledge/documents",
        files={"file": ("warranty.md", content, "text/markdown")},
        headers=headers(tenants.a),
    )
    assert answer.status_code == 202, answer.text
    wait_job(gw, tenants.a, answer.json()["id"])
    found = httpx.post(
        f"{gw.url}/v1/knowledge/search",
        json={"query": "How long is the Zorblax warranty?", "top_k": 1},
        headers=headers(tenants.a),
    ).json()["data"]
    assert found[0]["doc_id"] == "warranty.md"
    assert "27 months" in found[0]["text"]
    bad = httpx.post(
        f"{gw.url}/v1/knowledge/documents",
        files={"file": ("image.png", b"\x89PNG....", "image/png")},
        headers=headers(tenants.a),
    )
    assert bad.status_code == 400
    assert ".png" in bad.json()["error"]["message"]


def test_knowledge_needs_a_tenant_key(gw: Gateway) -> None:
    assert httpx.get(f"{gw.url}/v1/knowledge/documents").status_code == 401


def test_mode_report_end_to_end(gw: Gateway, base_model_dir: Path, tmp_path: Path) -> None:
    key = gw.admin("POST", "/admin/tenants", json={"id": "kb-report"}).json()["api_key"]
    adapter = make_lora_adapter(base_model_dir, tmp_path / "adapter", seed=5)
    answer = gw.admin("POST", "/admin/adapters", json={"path": str(adapter), "name": "report"})
    assert answer.status_code == 201, answer.text
    set_mode(gw, "kb-report", "base", "base", None)
    prompt_only = {"target": "base", "system_prompt": "Answer in one short sentence."}
    answer = gw.admin("PUT", "/admin/tenants/kb-report/modes/prompt", json=prompt_only)
    assert answer.status_code == 200, answer.text
    set_mode(gw, "kb-report", "rag", "base", {"top_k": 2})
    set_mode(gw, "kb-report", "adapter", "report@v1", None)
    set_mode(gw, "kb-report", "hybrid", "report@v1", {"top_k": 2})
    upload(gw, key, sorted((REPO / "examples" / "knowledge").glob("*.md")))
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join((REPO / "examples" / "qa.jsonl").read_text().splitlines(True)[:3]))
    out = tmp_path / "report"
    command = [sys.executable, "-m", "cli", "eval", "answers", str(qa)]
    command += ["--tenant", "kb-report", "--api-key", key, "--url", gw.url, "--out", str(out)]
    command += ["--max-tokens", "24", "--concurrency", "15"]  # all 3 x 5 answers at once
    command += ["--modes", "base,prompt,rag,adapter,hybrid"]
    done = subprocess.run(
        command, cwd=REPO, env=gw.env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if line[:3] in ("ok ", "-- ")]
    assert len(printed) == 3 * 5
    rows = {
        cells[0]: cells
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| mode")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert list(rows) == ["base", "prompt", "rag", "adapter", "hybrid"]
    assert [cells[1] for cells in rows.values()] == [
        "base",
        "prompt-only",
        "rag",
        "adapter",
        "hybrid",
    ]  # each mode's kind, from /v1/models
    for mode, cells in rows.items():
        correct = sum(line.startswith("ok ") for line in printed if f"[{mode}]" in line)
        assert cells[2] == f"{100 * correct / 3:.0f}%"
    assert rows["base"][3] == "n/a" and rows["rag"][3] != "n/a"
    assert int(rows["rag"][2].rstrip("%")) > int(rows["base"][2].rstrip("%"))
    # retrieval's sources show in the prompt tokens; the mode's instructions replace the
    # default system prompt SmolLM2's chat template adds when a request has none (43 -> 33)
    assert int(rows["rag"][5]) > int(rows["base"][5]) != int(rows["prompt"][5])
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert report.count("\n| ") == 6
    verdict = report.split("## Which pays")[1]
    assert "below 70% accuracy rethink" in verdict and "points over base" in verdict
    assert "**Pays on this data: " in verdict


def test_store_unavailable_follows_the_mode(gw: Gateway, tenants: Tenants) -> None:
    """A second gateway on the same data folder cannot open the embedded store (the first one
    holds it): its retrieval modes answer without context, or fail with 503, as configured."""
    set_mode(gw, "kb-a", "rag-or-fail", "base", {"top_k": 2, "on_store_error": "fail"})
    port = free_port()
    env = {
        **gw.env,
        "LORAG_ENGINE": "remote",
        "LORAG_VLLM_URLS": gw.vllm_url(),
        "LORAG_PORT": str(port),
    }
    second = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    other = Gateway(f"http://127.0.0.1:{port}", gw.data_dir, second, gw.log_path, env)
    try:
        other.wait_ready(timeout_s=120)
        reply = ask(other, tenants.a, "rag")
        assert reply["lorag"]["retrieval"]["status"] == "store_unavailable"
        assert reply["choices"][0]["message"]["content"]
        failed = httpx.post(
            f"{other.url}/v1/chat/completions",
            json={"model": "rag-or-fail", "messages": [{"role": "user", "content": QUESTION}]},
            headers=headers(tenants.a),
        )
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "store_unavailable"
    finally:
        second.terminate()
        second.wait(timeout=30)


def test_cli_ingest_goes_through_the_running_server(
    gw: Gateway, tenants: Tenants, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "manual.md").write_text("# Cleaning\n\nRinse the Zorblax burrs every 11 days.\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    env = {**gw.env, "LORAG_PORT": gw.url.rsplit(":", 1)[1]}
    command = [sys.executable, "-m", "cli", "ingest", str(folder)]
    command += ["--tenant", "kb-a", "--doc-id-prefix", "cli/"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # one file failed
    assert "held by the server" in done.stderr
    assert "broken.pdf" in done.stdout
    found = httpx.post(
        f"{gw.url}/v1/knowledge/search",
        json={"query": "How often do I rinse the burrs?", "top_k": 1},
        headers=headers(tenants.a),
    ).json()["data"]
    assert found[0]["doc_id"] == "cli/manual.md"
    assert found[0]["section"] == "Cleaning"


NOT_FOUND = "That is not in our knowledge base."


def test_a_grounded_mode_answers_its_sentence_when_nothing_is_found(
    gw: Gateway, tenants: Tenants, fact: str
) -> None:
    """Dense search with a cosine threshold decides "nothing relevant" (hybrid scores are
    shares of the best hit, so a hybrid threshold cannot): the mode's sentence, no sources,
    no tokens; a known fact is answered by the model as before. Any OpenAI client reads it."""
    grounded = {"top_k": 3, "search": "dense", "score_threshold": 0.5}
    set_mode(gw, "kb-a", "grounded", "base", {**grounded, "not_found_answer": NOT_FOUND})
    client = gw.openai(api_key=tenants.a)
    unknown = [{"role": "user", "content": "What is the capital of Mars?"}]
    reply = client.chat.completions.create(model="grounded", messages=unknown, max_tokens=32)
    assert reply.choices[0].message.content == NOT_FOUND
    assert reply.choices[0].finish_reason == "stop" and reply.model == "grounded"
    assert reply.usage is not None and reply.usage.completion_tokens == 0
    report = reply.model_extra["lorag"]["retrieval"]
    assert report["status"] == "no_results" and report["citations"] == []
    stream = client.chat.completions.create(
        model="grounded",
        messages=unknown,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == NOT_FOUND
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 0
    known = ask(gw, tenants.a, "grounded")
    assert "4471" in known["choices"][0]["message"]["content"]
    assert known["lorag"]["retrieval"]["citations"][0]["doc_id"] == fact
