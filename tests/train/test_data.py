"""Training data: formats, validation with line numbers, scrubbing, duplicates, split.

No model is loaded here except where the CLI is driven end to end (it stops before training).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from train.data_formats import load_examples
from train.dataset import prepare_data, split_examples
from train.errors import InvalidData, InvalidOption
from train.scrub import iban_ok, luhn_ok, scrub_text

REPO = Path(__file__).resolve().parents[2]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _chat(user: str, answer: str) -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
    )


def test_every_bad_chat_record_is_reported_with_its_line(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "bad.jsonl",
        [
            _chat("hello", "hi"),  # 1 ok
            '{"messages": [{"role": "user", "content": "x"}',  # 2 broken JSON
            json.dumps({"prompt": "no messages here"}),  # 3 missing field
            _chat("question", "   "),  # 4 empty assistant message
            json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),  # 5 unknown role
            "",  # blank lines are skipped, but counted
            json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),  # 7
            _chat("fine", "fine too"),  # 8 ok
        ],
    )
    with pytest.raises(InvalidData) as caught:
        load_examples(path)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 7",
    ]
    assert "broken JSON" in problems[0]
    assert "missing field 'messages'" in problems[1]
    assert "empty assistant message" in problems[2]
    assert "unknown role 'wizard'" in problems[3]
    assert "last message must be the assistant" in problems[4]
    assert caught.value.status == 400 and caught.value.code == "invalid_training_data"
    assert all(p in caught.value.message for p in problems)


def test_completion_alpaca_and_csv_formats(tmp_path: Path) -> None:
    completion = _write_lines(
        tmp_path / "c.jsonl", [json.dumps({"prompt": "2+2?", "completion": "4"})]
    )
    alpaca = _write_lines(
        tmp_path / "a.jsonl",
        [json.dumps({"instruction": "Translate", "input": "hola", "output": "hello"})],
    )
    csv_file = _write_lines(
        tmp_path / "d.csv", ["question,answer,extra", '"Multi\nline?",yes,1', "Q2,A2,2"]
    )
    ex, fmt = load_examples(completion)
    assert fmt == "completion" and ex[0].messages[-1] == {"role": "assistant", "content": "4"}
    ex, fmt = load_examples(alpaca)
    assert fmt == "alpaca" and ex[0].messages[0]["content"] == "Translate\n\nhola"
    ex, fmt = load_examples(csv_file)
    assert fmt == "csv" and [e.line for e in ex] == [2, 4]
    assert ex[0].messages[0]["content"] == "Multi\nline?"


def test_wrong_csv_columns_and_bad_rows(tmp_path: Path) -> None:
    wrong = _write_lines(tmp_path / "wrong.csv", ["text,label", "a,b"])
    with pytest.raises(InvalidData) as caught:
        load_examples(wrong)
    assert caught.value.problems[0].startswith("line 1: wrong CSV columns")
    assert "text" in caught.value.problems[0]

    named = _write_lines(tmp_path / "named.csv", ["q,a", "ok,fine", "missing,", "x,y,z"])
    with pytest.raises(InvalidData) as caught:
        load_examples(named, "csv", prompt_column="q", completion_column="a")
    assert caught.value.problems == ["line 3: empty 'a'", "line 4: 3 cells, the header has 2"]
    with pytest.raises(InvalidData, match="wrong CSV columns"):
        load_examples(named, "csv", prompt_column="question", completion_column="a")


def test_alpaca_and_completion_missing_fields(tmp_path: Path) -> None:
    path = _write_lines(
        tmp_path / "alp.jsonl",
        [
            json.dumps({"instruction": "x", "output": "y"}),
            json.dumps({"instruction": "x"}),
            json.dumps({"instruction": "", "output": "y"}),
            json.dumps([1, 2]),
        ],
    )
    with pytest.raises(InvalidData) as caught:
        load_examples(path, "alpaca")
    assert caught.value.problems == [
        "line 2: missing field 'output'",
        "line 3: field 'instruction' is empty",
        "line 4: expected a JSON object, got list",
    ]


def test_scrub_replaces_planted_personal_data() -> None:
    counts: Counter[str] = Counter()
    text = (
        "Write to jane.doe@example.com or j_smith+orders@mail.co.uk, call +1 (555) 123-4567 "
        "or 06 12 34 56 78. Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00. "
        "Order 4111111111111112 of 2024-01-15, version 1.2.3, host 192.168.10.100."
    )
    out = scrub_text(text, counts)
    for secret in ("jane.doe", "j_smith", "555", "06 12", "4111 1111", "DE89"):
        assert secret not in out
    assert out.count("<EMAIL>") == 2 and out.count("<PHONE>") == 2
    assert "<CARD>" in out and "<IBAN>" in out
    # a Luhn-invalid number, a date, a version and an IP address are not personal data
    for kept in ("4111111111111112", "2024-01-15", "1.2.3", "192.168.10.100"):
        assert kept in out
    assert counts == Counter(email=2, phone=2, card=1, iban=1)
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_prepare_data_scrubs_dedupes_and_splits(tmp_path: Path) -> None:
    lines = [_chat(f"question {i}", f"answer {i}") for i in range(20)]
    lines += [lines[0], lines[1]]  # exact duplicates
    lines.append(_chat("My email is bob@example.org, phone 415-555-0132-22", "Thanks bob@x.io"))
    path = _write_lines(tmp_path / "data.jsonl", lines)
    prepared = prepare_data(path, val_fraction=0.1, seed=3)
    summary = prepared.summary
    assert summary.records == 23 and summary.duplicates_dropped == 2
    assert summary.scrubbed == {"email": 2, "phone": 1}
    assert (summary.train, summary.validation, summary.test) == (17, 2, 2)
    assert len(prepared.train) + len(prepared.validation) + len(prepared.test) == 21
    texts = json.dumps([e.to_json() for e in prepared.train + prepared.validation + prepared.test])
    assert "bob@example.org" not in texts and "<EMAIL>" in texts
    again = prepare_data(path, val_fraction=0.1, seed=3)
    assert [e.key() for e in again.validation] == [e.key() for e in prepared.validation]
    other = prepare_data(path, val_fraction=0.1, seed=4)
    assert [e.key() for e in other.validation] != [e.key() for e in prepared.validation]
    raw = prepare_data(path, scrub=False)
    assert raw.summary.scrubbed == {}
    assert "bob@example.org" in json.dumps([e.to_json() for e in raw.train + raw.validation])


def test_split_keeps_one_validation_example_and_one_training_example() -> None:
    from train.examples import Example

    examples = [Example(({"role": "user", "content": str(i)},)) for i in range(3)]
    split = split_examples(examples, 0.1, seed=0)
    assert (len(split.train), len(split.validation), len(split.test)) == (2, 1, 0)
    split = split_examples(examples, 0.0, seed=0)
    assert (len(split.train), len(split.validation)) == (3, 0)
    split = split_examples(examples, 0.1, seed=0, test_fraction=0.1)
    assert (len(split.train), len(split.validation), len(split.test)) == (1, 1, 1)
    with pytest.raises(InvalidOption) as caught:
        split_examples(examples, 0.5, seed=0, test_fraction=0.5)
    assert caught.value.param == "test_fraction"


def test_test_split_is_disjoint_stable_and_keeps_a_prompt_together() -> None:
    """Test is cut first (another val_fraction tests the same examples) and shares no prompt
    with validation or train: a second answer to a test prompt must not be trained on."""
    from train.examples import Example

    def qa(question: str, answer: str) -> Example:
        return Example(
            ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
        )

    examples = [qa(f"question {i}", f"answer {i}") for i in range(40)]
    examples += [qa(f"question {i}", f"another answer {i}") for i in range(0, 40, 4)]

    def prompts(part: list[Example]) -> set[str]:
        return {e.messages[0]["content"] for e in part}

    split = split_examples(examples, 0.1, seed=0, test_fraction=0.2)
    assert len(split.train) + len(split.validation) + len(split.test) == 50
    assert (len(prompts(split.test)), len(prompts(split.validation))) == (8, 4)
    assert not prompts(split.test) & prompts(split.validation)
    assert not prompts(split.test) & prompts(split.train)
    assert not prompts(split.validation) & prompts(split.train)
    more_validation = split_examples(examples, 0.3, seed=0, test_fraction=0.2)
    assert [e.key() for e in more_validation.test] == [e.key() for e in split.test]
    assert split_examples(examples, 0.1, seed=1, test_fraction=0.2).test != split.test


def test_cli_bad_data_stops_before_any_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main

    bad = _write_lines(
        tmp_path / "bad.jsonl",
        [_chat("a", "b"), "{not json", json.dumps({"messages": []}), _chat("c", "")],
    )
    data_dir = tmp_path / "lorag"
    monkeypatch.setenv("LORAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv(
        "LORAG_BASE_MODEL", str(REPO / ".lorag" / "models" / "smollm2-135m-instruct")
    )
    code = main(["train", "--data", str(bad), "--no-publish", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: bad.jsonl: 3 bad record(s)" in err
    for line in ("line 2: broken JSON", "line 3: 'messages' must be", "line 4: messages[1]"):
        assert line in err
    assert not (data_dir / "runs").exists()
