"""`lorag train build-raft`: real knowledge base (qdrant-edge + MiniLM), real template."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from train.raft import NOT_FOUND_ANSWER

PRODUCTS = {
    "router": ("AcmeRouter X2", "The AcmeRouter X2 warranty lasts 24 months.", "24 months"),
    "thermo": ("SmartThermo 3", "The SmartThermo 3 runs on two AA batteries.", "two AA batteries"),
    "camera": ("HomeCam Pro", "The HomeCam Pro records video at 1080p.", "1080p"),
    "vacuum": ("RoboVac 500", "The RoboVac 500 empties its bin every 3 days.", "every 3 days"),
    "kettle": ("KettleSmart", "The KettleSmart boils one liter in 90 seconds.", "90 seconds"),
}
QUESTIONS = {
    "router": "How long is the warranty of the AcmeRouter X2?",
    "thermo": "What batteries does the SmartThermo 3 use?",
    "camera": "At what resolution does the HomeCam Pro record?",
    "vacuum": "How often does the RoboVac 500 empty its bin?",
    "kettle": "How fast does the KettleSmart boil one liter?",
}


def source_blocks(context: str) -> dict[str, str]:
    """Source number -> its label and text, as the default template lists them."""
    listed = context.split("Sources:\n", 1)[1].split("\n\n", 1)[0]
    parts = re.split(r"^\[(\d+)\] ", listed, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.fixture
def knowledge_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_model_dir: Path
) -> tuple[Path, Path]:
    from ingest.knowledge import open_knowledge_base
    from ingest.models import SourceDocument
    from lorag.settings import Settings

    data_dir = tmp_path / "lorag"
    settings = Settings(data_dir=data_dir, base_model=str(base_model_dir))
    docs = [
        SourceDocument(doc_id=doc_id, title=title, text=f"# {title}\n\n{fact}")
        for doc_id, (title, fact, _) in PRODUCTS.items()
    ]
    with open_knowledge_base(settings) as kb:
        kb.ingest_documents("acme", docs)
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": QUESTIONS[d], "answer": f"It is {PRODUCTS[d][2]}.", "doc_id": d}
        for d in PRODUCTS
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("LORAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    return qa, tmp_path / "raft.jsonl"


def test_build_raft_cites_the_right_source_among_distractors(
    knowledge_env: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    qa, out = knowledge_env
    code = main(
        [
            "train",
            "build-raft",
            str(qa),
            "--tenant",
            "acme",
            "--out",
            str(out),
            "--top-k",
            "3",
            "--no-context-fraction",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "with oracle 5" in printed
    # the prompt budget the gateway gives a mode's sources: LORAG_MAX_MODEL_LEN 2048 less 256
    assert "budget tokens 1792" in printed and "sources dropped for budget 0" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5
    for row, doc_id in zip(rows, PRODUCTS, strict=True):
        *prompt, assistant = row["messages"]
        assert assistant["role"] == "assistant" and prompt[-1]["role"] == "user"
        context = "\n".join(message["content"] for message in prompt)
        sources = source_blocks(context)
        assert len(sources) == 3  # the right chunk and two distractors
        assert QUESTIONS[doc_id] in prompt[-1]["content"]
        cited = re.findall(r"\[(\d+)\]", assistant["content"])
        assert len(cited) == 1 and assistant["content"].startswith("It is")
        assert PRODUCTS[doc_id][1] in sources[cited[0]]  # the cited source holds the answer


def test_build_raft_leaves_the_oracle_out_sometimes(knowledge_env: tuple[Path, Path]) -> None:
    from cli.main import main

    qa, out = knowledge_env
    code = main(
        [
            "train",
            "build-raft",
            str(qa),
            "--tenant",
            "acme",
            "--out",
            str(out),
            "--top-k",
            "2",
            "--no-context-fraction",
            "0.6",
            "--seed",
            "1",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    without = [r for r in rows if r["messages"][-1]["content"] == NOT_FOUND_ANSWER]
    assert 0 < len(without) < len(rows)
    for row in without:
        prompt = row["messages"][-2]["content"]
        doc_id = next(d for d, q in QUESTIONS.items() if q in prompt)
        assert PRODUCTS[doc_id][1] not in prompt


def test_bad_qa_lines_are_listed(tmp_path: Path) -> None:
    from train.errors import InvalidData
    from train.raft import load_qa

    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "q", "answer": "a"}\n{"question": "q"}\nnot json\n')
    with pytest.raises(InvalidData) as caught:
        load_qa(qa)
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 2", "line 3"]


def test_build_raft_keeps_each_prompt_within_its_budget(
    knowledge_env: tuple[Path, Path], capsys: pytest.CaptureFixture[str], base_model_dir: Path
) -> None:
    from cli.main import main
    from train.model_setup import load_tokenizer

    qa, out = knowledge_env
    args = ["train", "build-raft", str(qa), "--tenant", "acme", "--out", str(out)]
    assert (
        main([*args, "--top-k", "3", "--budget-tokens", "120", "--no-context-fraction", "0"]) == 0
    )
    printed = capsys.readouterr().out
    dropped = int(re.search(r"sources dropped for budget (\d+)", printed).group(1))
    assert dropped > 0, printed
    tokenizer = load_tokenizer(str(base_model_dir))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        prompt = row["messages"][:-1]
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        assert len(ids) <= 120
    kept = sum(len(source_blocks(row["messages"][-2]["content"])) for row in rows)
    assert kept == 3 * len(rows) - dropped
