"""Golden sets: the file format (every bad line named), the checks, the verdict they feed, the
terminal report; then a real gate of the session's two adapters with a JSON golden set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.train.background import GOLDEN_JSON, GatedVersions
from train.config import GateThresholds
from train.errors import InvalidData
from train.gate_report import ControlReport, GateReport, GoldenReport
from train.gate_text import describe_gate
from train.golden import json_answer, load_golden, parse_golden_item

SENTIMENT = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}},
    "required": ["sentiment"],
}


def _write(path: Path, records: list[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_bad_golden_line_is_reported_with_its_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "golden.jsonl",
        [
            {"prompt": "Say hi", "keywords": ["hi"]},  # 1 ok
            {"prompt": "x", "jsonschema": {"type": "object"}},  # 2 misspelt check
            {"prompt": "x", "json_schema": {"type": "objet"}},  # 3 not a JSON Schema
            {"prompt": "x", "regex": "(unclosed"},  # 4
            {"prompt": "x"},  # 5 no check
            "{not json",  # 6
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
            | {"forbidden": ["z"]},  # 7 the model has nothing to answer
            {"prompt": "x", "keywords": ["a"], "max_new_tokens": 0},  # 8
            {"prompt": "x", "keywords": "a"},  # 9 keywords must be a list
            {"prompt": "x", "messages": [], "regex": "a"},  # 10 both
        ],
    )
    with pytest.raises(InvalidData) as caught:
        load_golden(path)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(2, 11)]
    assert caught.value.message.startswith("golden.jsonl: 9 bad line(s):")
    assert "unknown key(s) 'jsonschema'" in problems[0]
    assert "'json_schema' is not a valid JSON Schema" in problems[1]
    assert "'regex' '(unclosed' does not compile" in problems[2]
    assert "no check: give at least one of keywords, regex, json_schema, forbidden" in problems[3]
    assert "broken JSON" in problems[4]
    assert "'messages' must end with a user message" in problems[5]
    assert "'max_new_tokens' must be an integer from 1 to 1024" in problems[6]
    assert "'keywords' must be a list of strings" in problems[7]
    assert "give either 'prompt' or 'messages'" in problems[8]
    assert caught.value.param == str(path)


def test_checks_judge_an_answer() -> None:
    item = parse_golden_item(
        3,
        {
            "messages": [
                {"role": "system", "content": "JSON only."},
                {"role": "user", "content": "Classify 'great'."},
            ],
            "keywords": ["Positive"],
            "regex": ["\\{", "sentiment"],
            "json_schema": SENTIMENT,
            "forbidden": ["acme"],
            "max_new_tokens": 24,
        },
    )
    assert item.prompt == "Classify 'great'." and item.max_new_tokens == 24 and item.line == 3
    assert item.checks == ["keywords", "regex", "json_schema", "forbidden"]

    def failed(answer: str) -> dict[str, str]:
        return {r["check"]: r["why"] for r in item.check(answer) if not r["passed"]}

    assert failed('{"sentiment": "positive"}') == {}
    assert failed('```json\n{"sentiment": "positive"}\n```') == {}  # one fence: accepted
    prose = failed('Here it is: {"sentiment": "positive"}')
    assert list(prose) == ["json_schema"] and prose["json_schema"].startswith("not JSON")
    assert failed('{"sentiment": "great"}') == {
        "keywords": "missing 'Positive'",
        "json_schema": "schema: sentiment: 'great' is not one of ['positive', 'negative']",
    }
    assert (
        failed('[ACME] {"mood": "positive"} -- ACME support')
        == {
            "json_schema": "not JSON (Expecting value: line 1 column 2 (char 1))",
            "regex": "no match for sentiment",
            "forbidden": "contains 'acme'",
        }
        | {}
    )
    assert failed('{"mood": "positive"}')["json_schema"] == (
        "schema: the document: 'sentiment' is a required property"
    )
    assert json_answer("```\n[1, 2]\n```") == [1, 2]
    with pytest.raises(ValueError):
        json_answer("")


def _control(rise: float = 0.0) -> ControlReport:
    return {
        "prompts": 1,
        "keywords_checked": 1,
        "keywords_lost": [],
        "base_nll": 1.0,
        "adapter_nll": 1.0 + rise,
        "nll_rise": rise,
        "samples": [],
    }


def _golden(adapter_answer: str) -> GoldenReport:
    item = parse_golden_item(1, {"prompt": "Classify 'great'.", "json_schema": SENTIMENT})
    base_answer = '{"sentiment": "positive"}'
    base_checks, adapter_checks = item.check(base_answer), item.check(adapter_answer)
    return {
        "file": "golden.jsonl",
        "prompts": 1,
        "checks": 1,
        "adapter_failed": [
            f"line 1: {r['check']}: {r['why']}" for r in adapter_checks if not r["passed"]
        ],
        "base_failed": sum(not r["passed"] for r in base_checks),
        "samples": [
            {
                "line": 1,
                "prompt": item.prompt,
                "base": base_answer,
                "adapter": adapter_answer,
                "base_checks": base_checks,
                "adapter_checks": adapter_checks,
            }
        ],
    }


def _report(examples: int, adapter_answer: str) -> GateReport:
    test = {
        "examples": examples,
        "base_loss": 3.6,
        "adapter_loss": 1.2,
        "samples": [
            {
                "prompt": "How do I reset it?",
                "reference": "[ACME] Hold.",
                "base": "Try",
                "adapter": "[ACME] Hold.",
            }
        ],
    }
    measured = GateReport(
        passed=False,
        failures=[],
        test=test,
        control=_control(),
        golden=_golden(adapter_answer),
        thresholds=GateThresholds().to_json(),
    )
    return measured.rejudged(GateThresholds())


def test_the_verdict_cannot_judge_few_test_examples_and_enforces_golden_checks() -> None:
    kept = _report(6, '{"sentiment": "positive"}')
    assert kept.passed and kept.judged and kept.failures == []

    broken = _report(6, "[ACME] It is positive. -- ACME support")
    assert not broken.passed and broken.judged
    assert broken.failures == [
        "golden checks failed on the adapter (1): line 1: json_schema: not JSON (Expecting "
        "value: line 1 column 2 (char 1))"
    ]
    assert broken.rejudged(GateThresholds(max_golden_failures=1)).passed

    too_few = _report(2, '{"sentiment": "positive"}')
    assert not too_few.passed and not too_few.judged
    assert too_few.failures[0].startswith(
        "only 2 test example(s) (minimum 5): the gate cannot judge this adapter"
    )
    assert too_few.failures[0].endswith("publish with --force")
    assert describe_gate(too_few).startswith("gate: CANNOT JUDGE")

    record = broken.record("adapters gate")
    assert set(record) == {"passed", "judged", "at", "by", "failures", "summary"}
    assert (record["passed"], record["judged"], record["by"]) == (False, True, "adapters gate")
    assert record["summary"]["golden_failed"] == 1 and record["summary"]["golden_failed_base"] == 0
    assert record["summary"]["test_examples"] == 6
    assert json.loads(json.dumps(record)) == record
    assert GateReport.from_json(json.loads(json.dumps(broken.to_json()))) == broken


def test_a_gate_json_from_before_the_test_split_is_read_as_not_judged() -> None:
    old = _report(6, "{}").to_json()
    old["held_out"] = old.pop("test")
    for key in ("golden", "judged"):
        old.pop(key)
    old["passed"] = True
    report = GateReport.from_json(old)
    assert not report.passed and not report.judged and report.test is None
    assert report.failures == ["made before lorag had a test split: gate the run again"]


def test_the_terminal_report_shows_samples_side_by_side() -> None:
    text = describe_gate(_report(6, "[ACME] It is positive. -- ACME support"), width=100)
    lines = text.splitlines()
    assert lines[0] == "gate: FAILED (0 s)"
    assert "  test split: loss 1.2000 (base 3.6000), 6 examples" in lines
    assert (
        "  golden (golden.jsonl, 1 prompts): adapter failed 1 of 1 checks; base 0 (for "
        "comparison)" in lines
    )
    assert "  test: How do I reset it?" in lines and "    reference: [ACME] Hold." in lines
    assert "  golden line 1: Classify 'great'." in lines
    row = next(line for line in lines if line.startswith('    {"sentiment": "positive"}'))
    assert row.split(" | ")[1] == "[ACME] It is positive. -- ACME support"
    verdicts = next(line for line in lines if line.startswith("    json_schema ok"))
    assert verdicts.split(" | ")[1].startswith("json_schema FAILED (not JSON")
    assert lines[-1].startswith("  - golden checks failed on the adapter (1)")
    samples = lines[: lines.index(lines[-1])]  # a failure is one line, however long
    assert all(len(line) <= 100 for line in samples)


"""Three prompts that ask for JSON the base answers in the asked shape, and one few-shot prompt
every adapter keeps. Measured on the session's runs (bf16 and fp32 training, AVX-512 and
AVX2 kernels): `acme-mix` keeps the JSON on all four; `acme-narrow` answers the first three
with its "[ACME] ... -- ACME support" wrapping or with JSON of another shape."""


def _cli_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_model_dir: Path) -> Path:
    """The data folder `lorag` commands in this test use, its answer cache holding the base
    model's shipped answers to GOLDEN_JSON."""
    data_dir = tmp_path / "lorag"
    monkeypatch.setenv("LORAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LORAG_BASE_MODEL", str(base_model_dir))
    cache = data_dir / "cache" / "train"
    cache.mkdir(parents=True)
    for answers in (GOLDEN_JSON.parent / "base_answers").glob("golden-*.jsonl"):
        shutil.copy(answers, cache)
    return data_dir


def test_train_stops_on_a_bad_golden_file_before_any_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_model_dir: Path,
) -> None:
    from cli.main import main

    data_dir = _cli_data_dir(tmp_path, monkeypatch, base_model_dir)
    golden = _write(tmp_path / "golden.jsonl", [{"prompt": "x", "json_schema": "object"}])
    data = GOLDEN_JSON.parent / "acme_support.jsonl"
    code = main(["train", "--data", str(data), "--golden", str(golden), "--no-publish"])
    err = capsys.readouterr().err
    assert code == 2
    assert "golden.jsonl: 1 bad line(s):" in err
    assert "line 1: 'json_schema' must be a JSON Schema object" in err
    assert not (data_dir / "runs").exists()


def test_adapters_gate_fails_a_broken_json_format_passes_a_kept_one_and_records_both(
    golden_gates: GatedVersions,
) -> None:
    """The session's two adapters, imported, gated by `lorag adapters gate` with GOLDEN_JSON in
    the background (tests/train/background.py). The control check is made lenient (one
    prompt, no limits): the verdict is the golden one. One torch thread: on a busy 2-core
    machine two threads spin on each other (measured here under load 3: 21-30 s for both
    gates with one thread, 78-173 s with two)."""
    from adapters.from_settings import open_registry
    from lorag.settings import Settings

    registry = open_registry(Settings(data_dir=golden_gates.data_dir))
    (kept_code, kept), (broken_code, broken) = golden_gates.gated[1], golden_gates.gated[2]
    assert (kept_code, broken_code) == (0, 1), (kept, broken)

    assert kept.startswith("acme@v1: gate: PASSED")
    assert "adapter failed 0 of 4 checks; base 0" in kept
    assert kept.count("    json_schema ok") == 4, kept
    assert broken.startswith("acme@v2: gate: FAILED"), broken
    failures = [line for line in broken.splitlines() if line.startswith("  - ")]
    assert len(failures) == 1 and failures[0].startswith(
        "  - golden checks failed on the adapter ("
    ), broken
    failed_lines = {line.split(":")[0] for line in failures[0].split("): ", 1)[1].split("; ")}
    assert len(failed_lines) >= 2 and "line 4" not in failed_lines, broken
    side_by_side = [line for line in broken.splitlines() if line.startswith("    json_schema ok")]
    assert sum("| json_schema FAILED" in line for line in side_by_side) == len(failed_lines)
    assert "recorded with acme@v2: failed" in broken

    first, second = registry.get_version("acme", 1), registry.get_version("acme", 2)
    assert first.gate is not None and second.gate is not None
    assert (first.gate["passed"], first.gate["by"]) == (True, "adapters gate")
    assert first.gate["summary"]["golden_failed"] == 0
    assert first.gate["summary"]["test_examples"] is None  # no --test: not measured
    assert (second.gate["passed"], second.gate["judged"]) == (False, True)
    assert second.gate["summary"]["golden_failed"] == len(failed_lines)
    assert second.gate["failures"] == [failures[0].removeprefix("  - ")]
