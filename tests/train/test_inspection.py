"""`lorag data inspect`: every finding names the right lines of the user's file.

The tokenizer is the bundled base model's (loading it takes a fraction of a second once
transformers is imported); no model is loaded, and `lorag train` is stopped by the
inspection before anything is trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from train.examples import Example
from train.findings import Finding
from train.inspection import InspectionReport, inspect_examples, inspect_file

ADDRESS_ANSWER = (
    "Open Account > Orders, pick the order and choose Change address. This works until the "
    "parcel leaves our warehouse, usually within a day of ordering; after that, the carrier "
    "can redirect it from the tracking page."
)


def _chat(user: str, answer: str) -> str:
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages})


# line -> record; line 4 is blank and still counted, as in the user's editor
PROBLEMS = {
    1: _chat("How do I reset my router?", "Hold the reset button for ten seconds."),
    2: _chat(
        "What does HTN-DM-CKD stand for?",
        "HTN-DM-CKD is hypertension, diabetes and chronic kidney disease together.",
    ),
    3: _chat("How long is the refund window?", "You can ask for a refund within 30 days."),
    5: _chat("How do I reset my router?", "Hold the reset button for ten seconds."),
    6: _chat("how long is the refund window", "Refunds are possible for 14 days."),
    7: _chat("Which clinic treats HTN-DM-CKD?", "Our HTN-DM-CKD clinic sees patients on Mondays."),
    8: _chat("How do I change my delivery address after ordering?", ADDRESS_ANSWER),
    9: _chat("How can I change my delivery address after ordering?", ADDRESS_ANSWER),
    10: _chat("Write to me at dana.whitfield@example.com please.", "We will reply by email."),
    11: _chat("Do you ship abroad?", "Yes, to every country in the European Union."),
}


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model_dir))


@pytest.fixture
def problems_file(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    last = max(PROBLEMS)
    path.write_text("\n".join(PROBLEMS.get(n, "") for n in range(1, last + 1)) + "\n")
    return path


def _by_code(report: InspectionReport) -> dict[str, list[Finding]]:
    found: dict[str, list[Finding]] = {}
    for finding in report.findings:
        found.setdefault(finding.code, []).append(finding)
    return found


def test_each_finding_names_its_lines(problems_file: Path, tokenizer: Any) -> None:
    report = inspect_file(problems_file, lambda: tokenizer)
    found = _by_code(report)
    assert (report.examples, report.format) == (10, "chat")

    [conflict] = found["conflicting_answers"]
    assert (conflict.severity, conflict.lines) == ("error", (3, 6))
    assert "30 days" in conflict.message and "14 days" in conflict.message
    assert report.errors == [conflict]

    [duplicate] = found["exact_duplicate"]
    assert (duplicate.severity, duplicate.lines) == ("warning", (1, 5))
    [near] = found["near_duplicate"]
    assert near.lines == (8, 9)

    terms = {f.details["term"]: f for f in found["fragmented_terms"]}
    assert found["fragmented_terms"][0] is terms["HTN-DM-CKD"]  # recurring: listed first
    assert terms["HTN-DM-CKD"].lines == (2, 7)
    assert terms["HTN-DM-CKD"].details["tokens"] >= 5
    assert "".join(terms["HTN-DM-CKD"].details["pieces"]) == "HTN-DM-CKD"

    [pii] = found["pii"]
    assert (pii.lines, pii.details["kind"]) == ((10,), "email")

    # 10 examples, less the second copy (5), the near-duplicate (9) and both conflicting (3, 6)
    assert report.task is not None and report.task.clean_examples == 6
    assert found["too_few_examples"][0].severity == "warning"
    assert report.lengths is not None and report.lengths["answer"]["max"] >= 40


class WordTokenizer:
    """One token per whitespace-separated word: lengths a test can count by eye."""

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return [len(word) for word in text.split()]


def _example(line: int, user: str, answer: str) -> Example:
    return Example(
        ({"role": "user", "content": user}, {"role": "assistant", "content": answer}), line
    )


def test_lengths_templates_and_facts() -> None:
    format_data = [
        _example(n, f"question number {n} about the order", f"[ACME] answer {n}. -- ACME support")
        for n in range(1, 9)
    ]
    format_data.append(_example(9, "one more question", "an answer without the format"))
    format_data.append(_example(10, "a long one", " ".join(["word"] * 40) + " -- ACME support"))
    report = inspect_examples(format_data, WordTokenizer(), max_seq_len=30)
    found = _by_code(report)
    assert report.task is not None and report.task.kind == "format"
    assert found["mixed_templates"][0].lines == (9, 10)  # 10 closes with it but does not open
    assert found["too_long"][0].lines == (10,)
    assert report.lengths is not None and report.lengths["answer"]["max"] == 43
    assert "looks_like_facts" not in found

    facts = [
        _example(n, f"When was building {n} built?", f"Building {n} opened in {1900 + n} in Oslo.")
        for n in range(1, 11)
    ]
    found = _by_code(inspect_examples(facts, WordTokenizer()))
    assert found["looks_like_facts"][0].lines == tuple(range(1, 11))
    assert "thousands" in found["too_few_examples"][0].message


def test_bad_records_are_errors_without_loading_the_tokenizer(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(_chat("fine", "fine") + "\n{not json\n" + _chat("x", "") + "\n")

    def no_tokenizer() -> Any:
        raise AssertionError("the tokenizer is not needed for a file that does not parse")

    report = inspect_file(path, no_tokenizer)
    assert [(f.severity, f.code, f.lines) for f in report.findings] == [
        ("error", "invalid_record", (2,)),
        ("error", "invalid_record", (3,)),
    ]


@pytest.fixture
def lorag_env(tmp_path: Path, base_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "lorag"
    monkeypatch.setenv("LORAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    return data_dir


def test_the_command_prints_the_report_and_json(
    problems_file: Path, lorag_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    assert main(["data", "inspect", str(problems_file), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    lines = {(f["code"], tuple(f["lines"])) for f in report["findings"]}
    assert {("conflicting_answers", (3, 6)), ("exact_duplicate", (1, 5))} <= lines
    assert {("near_duplicate", (8, 9)), ("fragmented_terms", (2, 7)), ("pii", (10,))} <= lines
    assert report["counts"]["error"] == 1 and report["lengths"]["whole"]["max"] > 0

    assert main(["data", "inspect", str(problems_file)]) == 1
    text = capsys.readouterr().out
    assert "conflicting_answers  lines 3, 6" in text and "HTN-DM-CKD" in text
    assert "`lorag train` refuses this file" in text

    clean = problems_file.with_name("clean.jsonl")
    clean.write_text(PROBLEMS[1] + "\n" + PROBLEMS[11] + "\n")
    assert main(["data", "inspect", str(clean)]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_train_refuses_conflicts_before_any_run(
    problems_file: Path, lorag_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import build_parser, main

    code = main(["train", "--data", str(problems_file), "--no-publish", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "error: problems.jsonl: the data inspection found 1 error(s)" in err
    assert "lines 3, 6: conflicting_answers" in err
    assert "warning: exact_duplicate (lines 1, 5)" in out  # warnings are shown, not fatal
    assert not (lorag_env / "runs").exists()
    assert build_parser().parse_args(["train", "--no-inspect"]).no_inspect is True
