"""Preference files (OpenAI's preference format): every bad line with its number and field,
scrubbing and the prompt-grouped split, the inspection's preference checks, and the way the
SFT reader and `--method dpo` refuse each other's files. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from train.data_formats import load_examples
from train.errors import InvalidData
from train.inspection import inspect_file
from train.preferences import (
    PreferencePair,
    load_preferences,
    looks_like_preferences,
    prepare_preferences,
    read_pairs,
    write_pairs,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "preferences" / "prefs.jsonl"


def _pair(question: str, preferred: str, other: str, **input_extra: Any) -> dict[str, Any]:
    return {
        "input": {"messages": [{"role": "user", "content": question}], **input_extra},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": other}],
    }


def _write(path: Path, lines: list[Any]) -> Path:
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def test_every_bad_preference_line_is_reported_with_its_number_and_field(tmp_path: Path) -> None:
    good = _pair("Where is my order?", "Which order number? — Support", "No idea.")
    tool = {"type": "function", "function": {"name": "track", "parameters": {}}}
    call = {"function": {"name": "track", "arguments": '{"order": "A1"}'}}
    lines = [
        good,  # 1
        "{broken",  # 2
        {**good, "prefered_output": []},  # 3 misspelt key
        {"input": good["input"], "preferred_output": good["preferred_output"]},  # 4
        _pair("Hi", "Hello", "Hello"),  # 5 the same answer twice
        {**good, "input": {"messages": [{"role": "robot", "content": "x"}]}},  # 6
        {**good, "preferred_output": [{"role": "assistant", "content": " "}]},  # 7
        {**good, "non_preferred_output": [{"role": "user", "content": "x"}]},  # 8
        {**good, "preferred_output": [{"role": "assistant", "tool_calls": [call]}]},  # 9
        {
            **good,
            "input": {"messages": [*good["input"]["messages"], good["preferred_output"][0]]},
        },  # 10: the input ends with an answer
        {**good, "input": {**good["input"], "tools": "track"}},  # 11
        "",  # 12 blank: skipped, still counted
        {
            "input": {**good["input"], "tools": [tool], "parallel_tool_calls": True},
            "preferred_output": [{"role": "assistant", "content": None, "tool_calls": [call]}],
            "non_preferred_output": [{"role": "assistant", "content": "I can't look it up."}],
        },  # 13 fine: a tool call preferred
    ]
    with pytest.raises(InvalidData) as caught:
        load_preferences(_write(tmp_path / "prefs.jsonl", lines))
    assert caught.value.problems == [
        "line 2: broken JSON (Expecting property name enclosed in double quotes: line 1 column "
        "2 (char 1))",
        "line 3: unknown key(s) 'prefered_output'; known: input, preferred_output, "
        "non_preferred_output",
        "line 4: missing field 'non_preferred_output'",
        "line 5: preferred_output and non_preferred_output are the same answer",
        "line 6: input.messages[0]: unknown role 'robot' (expected one of system, user, "
        "assistant, tool)",
        "line 7: preferred_output[0]: empty assistant message",
        "line 8: non_preferred_output[0].role must be 'assistant', got 'user'",
        "line 9: preferred_output[0].tool_calls[0]: calls 'track', not among the record's "
        "tools: none (the record has no 'tools')",
        "line 10: input.messages[1]: the input must end with the user's (or a tool's) "
        "message, which the outputs answer",
        "line 11: 'input.tools' must be a list of function tools",
    ]
    assert "nothing was trained" in caught.value.message

    good_only = _write(tmp_path / "good.jsonl", [lines[0], lines[12]])
    first, second = load_preferences(good_only)
    assert (first.line, second.line) == (1, 2)
    assert second.tools == (tool,) and second.preferred["tool_calls"][0]["function"] == {
        "name": "track",
        "arguments": '{"order": "A1"}',
    }
    assert second.preferred_text == 'track({"order": "A1"})'


def test_the_sft_reader_and_dpo_refuse_each_others_files(tmp_path: Path) -> None:
    prefs = _write(tmp_path / "prefs.jsonl", [_pair("Hi", "Hello. — Support", "What?")])
    chat = _write(
        tmp_path / "chat.jsonl",
        [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x"}]}],
    )
    assert looks_like_preferences(prefs) and not looks_like_preferences(chat)
    with pytest.raises(InvalidData, match=r"preference format .* --method dpo"):
        load_examples(prefs)
    with pytest.raises(InvalidData) as caught:
        load_preferences(chat)
    assert caught.value.problems == [
        "line 1: unknown key(s) 'messages'; known: input, preferred_output, non_preferred_output"
    ]


def test_pairs_are_scrubbed_deduplicated_and_split_by_prompt(tmp_path: Path) -> None:
    lines = []
    for n in range(20):
        lines.append(_pair(f"Question {n}?", f"Answer {n}. — Support", f"Rude {n}."))
        lines.append(_pair(f"Question {n}?", f"Answer {n}. — Support", f"Wrong {n}."))
    lines.append(lines[0])  # an exact duplicate
    lines.append(_pair("Mail me at ana.lopez@example.com", "Done. — Support", "Call 030 1234567"))
    prepared = prepare_preferences(_write(tmp_path / "p.jsonl", lines), seed=3)
    summary = prepared.summary
    assert (summary.records, summary.duplicates_dropped, summary.format) == (42, 1, "preference")
    assert summary.scrubbed == {"email": 1, "phone": 1}
    scrubbed = next(p for p in prepared.train + prepared.validation + prepared.test if p.line == 42)
    assert scrubbed.prompt[0]["content"] == "Mail me at <EMAIL>"
    assert scrubbed.non_preferred["content"] == "Call <PHONE>"
    splits = [prepared.train, prepared.validation, prepared.test]
    assert sum(map(len, splits)) == 41 and all(splits)
    prompts = [{json.dumps(pair.prompt) for pair in split} for split in splits]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])

    write_pairs(tmp_path / "run" / "test.jsonl", prepared.test)
    assert read_pairs(tmp_path / "run" / "test.jsonl") == prepared.test


def test_a_scored_pair_trains_only_its_final_answer() -> None:
    pair = PreferencePair(
        prompt=(
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "My order?"},
        ),
        preferred={"role": "assistant", "content": "Which order number?"},
        non_preferred={"role": "assistant", "content": "Lost."},
    )
    scored = pair.scored(pair.non_preferred)
    assert [m.get("weight") for m in scored.messages] == [None, 0, None, None]
    assert scored.answer == "Lost." and pair.preferred_example.messages[1].get("weight") is None


def test_inspection_reads_a_preference_file(tmp_path: Path, base_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    lines = [_pair(f"Question {n}?", f"Answer {n}.", f"A longer answer {n}.") for n in range(20)]
    lines.append(_pair("Question 0?", "A longer answer 0.", "Answer 0."))  # 21: reversed
    lines.append(_pair("Question 1?", "Another answer.", "Answer 1."))  # two pairs: fine
    path = _write(tmp_path / "prefs.jsonl", lines)
    report = inspect_file(path, lambda: AutoTokenizer.from_pretrained(str(base_model_dir)))
    assert (report.format, report.examples) == ("preference", 22)
    codes = {finding.code: finding for finding in report.findings}
    assert codes["reversed_pair"].severity == "error" and codes["reversed_pair"].lines == (1, 21)
    assert codes["length_bias"].severity == "warning"
    assert "conflicting_answers" not in codes  # several pairs for one prompt are ordinary

    bad = _write(tmp_path / "bad.jsonl", [lines[0], {"input": {}}])
    broken = inspect_file(bad, lambda: pytest.fail("no tokenizer for an unreadable file"))
    assert [(f.code, f.lines) for f in broken.findings] == [("invalid_record", (2,))]


def test_the_shipped_preference_example_is_clean() -> None:
    pairs = load_preferences(EXAMPLE)
    assert len(pairs) == 90
    assert all(pair.preferred_text.endswith("— Larkspur Support") for pair in pairs)
