"""Choosing sources among look-alike documents, and answers that say nothing (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from lorag.degenerate import degenerate
from lorag.prompting import with_context
from lorag.retrieval_policy import RetrievalOverride, mode_settings, narrowed
from lorag.source_selection import asks_comparison, named_entities, near_duplicate, select
from service.errors import InvalidRequest


@dataclass
class Sheet:
    doc_id: str
    title: str | None
    text: str
    score: float
    section: str | None = None
    chunk_index: int = 0


def spec(name: str, pressure: int, flow: int, score: float) -> Sheet:
    text = f"- Maximum pressure: {pressure} kPa\n- Flow rate: {flow} litres per minute"
    return Sheet(name.lower().replace(" ", "-"), name, text, score, f"{name} > Specifications")


A70 = spec("Torvane A70", 475, 38, 1.0)
S81 = spec("Torvane S-81", 507, 44, 0.78)
OVERVIEW = Sheet(
    "torvane-a70", "Torvane A70", "The Torvane A70 is a circulation pump made by Torvane.", 0.77
)
K60 = spec("Kestrane A60", 360, 21, 0.55)
QUESTION = "What is the maximum pressure of the Torvane A70?"


def test_another_products_same_section_is_collapsed() -> None:
    assert near_duplicate(S81, A70) and near_duplicate(K60, A70)
    assert not near_duplicate(OVERVIEW, A70)
    chosen = select([A70, S81, OVERVIEW, K60], QUESTION, max_k=3)
    assert chosen.kept == [A70, OVERVIEW]
    assert (chosen.collapsed, chosen.comparison, chosen.entities) == (2, False, ["Torvane A70"])


def test_a_comparison_keeps_the_look_alikes() -> None:
    question = "Which has the higher pressure, the Torvane A70 or the Torvane S-81?"
    assert named_entities(question, [A70, S81, K60]) == ["Torvane S-81", "Torvane A70"]
    chosen = select([A70, S81, OVERVIEW, K60], question, max_k=3)
    assert chosen.kept == [A70, S81, OVERVIEW] and chosen.collapsed == 0 and chosen.comparison
    assert asks_comparison("Which pump is the cheapest?")
    assert asks_comparison("Compare the warranties")
    assert not asks_comparison(QUESTION, ["Torvane A70"])


def test_cutoff_min_k_and_max_k() -> None:
    hits = [A70, S81, OVERVIEW, K60]
    plain = select(hits, QUESTION, max_k=4, collapse=False)
    assert plain.kept == hits
    cut = select(hits, QUESTION, max_k=4, cutoff=0.8, collapse=False)
    assert cut.kept == [A70] and cut.below_cutoff == 3
    refilled = select(hits, QUESTION, max_k=4, min_k=2, cutoff=0.8, collapse=False)
    assert refilled.kept == [A70, S81] and refilled.below_cutoff == 2
    assert select(hits, QUESTION, max_k=2, collapse=False).kept == [A70, S81]
    # the cut-off is relative: the same hits at a tenth of the scores are cut the same way
    scaled = [Sheet(h.doc_id, h.title, h.text, h.score / 10, h.section) for h in hits]
    assert len(select(scaled, QUESTION, max_k=4, cutoff=0.8, collapse=False).kept) == 1


def test_a_title_is_named_as_a_whole_phrase() -> None:
    assert named_entities("What does the Torvane weigh?", [A70, S81]) == []
    assert named_entities("what is the part code of the torvane a70", [A70]) == ["Torvane A70"]
    untitled = Sheet("notes.txt", None, "- Maximum pressure: 1 kPa", 1.0)
    assert named_entities(QUESTION, [untitled]) == []


@pytest.fixture(scope="module")
def tokenizer(base_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir)


def test_v2_labels_sources_states_the_entity_and_orders(tokenizer) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    common = {"tokenizer": tokenizer, "instructions": None, "budget_tokens": 2000}
    v1 = with_context(messages, [A70, OVERVIEW], template_version="v1", **common)
    assert v1.messages[0]["content"].startswith(
        "Sources:\n[1] Torvane A70: - Maximum pressure: 475 kPa - Flow rate"
    )
    v2 = with_context(
        messages, [A70, OVERVIEW], template_version="v2", entities=["Torvane A70"], **common
    )
    text = v2.messages[0]["content"]
    assert "[1] Torvane A70 > Specifications\n- Maximum pressure: 475 kPa\n- Flow rate" in text
    assert "[2] Torvane A70\nThe Torvane A70 is" in text  # no section: the title alone
    assert text.startswith("These sources are about Torvane A70.\n\nSources:\n[1] Torvane A70 >")
    assert text.endswith(f"Cite sources like [1].\n\nQuestion: {QUESTION}")
    unnamed = with_context(messages, [A70], template_version="v2", **common)
    assert unnamed.messages[0]["content"].startswith("Sources:\n[1] Torvane A70 > Spec")
    last = with_context(messages, [A70, OVERVIEW], template_version="v2", best_last=True, **common)
    assert last.kept == [OVERVIEW, A70]  # numbered as listed: the best is [2], by the question
    assert "[2] Torvane A70 > Specifications" in last.messages[0]["content"]
    strict = with_context(messages, [A70], template_version="v2", strict=True, **common)
    assert "Do not list or repeat the sources." in strict.messages[0]["content"]


def test_degenerate_answers() -> None:
    labels = ["Torvane A70 > Specifications", "Torvane A70", "Torvane S-81 > Specifications"]
    assert degenerate("[1] [2] [3]", labels) == "only citation markers"
    assert degenerate("[1][2].", labels) == "only citation markers"
    listed = "[1] Torvane A70 > Specifications\n[2] Torvane S-81 > Specifications"
    assert degenerate(listed, labels) == "repeats the source list"
    assert degenerate("Sources:\n[1] Torvane A70: ...", labels) == "repeats the source list"
    assert degenerate("The maximum pressure is 475 kPa [1].", labels) is None
    assert degenerate("[1] The maximum pressure is 475 kPa.", labels) is None
    assert degenerate("", labels) is None  # empty is not "says only markers"


def test_new_settings_validate_and_requests_may_tune_them() -> None:
    with pytest.raises(InvalidRequest) as caught:
        mode_settings({"top_k": 3, "min_k": 4})
    assert caught.value.param == "retrieval.min_k"
    with pytest.raises(InvalidRequest) as caught:
        mode_settings({"template": "v9"})
    assert caught.value.param == "retrieval.template" and "v1, v2" in caught.value.message
    with pytest.raises(InvalidRequest) as caught:
        mode_settings({"relative_cutoff": 1.5})
    assert caught.value.param == "retrieval.relative_cutoff"
    settings = mode_settings({"top_k": 5, "relative_cutoff": 0.5})
    assert settings is not None
    tuned = narrowed(
        settings,
        RetrievalOverride(
            relative_cutoff=0.3, min_k=4, template="v2", source_order="best_last", top_k=3
        ),
    )
    assert tuned.relative_cutoff == 0.5  # a cut-off only rises
    assert (tuned.top_k, tuned.min_k) == (3, 3)  # min_k never above top_k
    assert (tuned.template, tuned.source_order) == ("v2", "best_last")
    with pytest.raises(InvalidRequest) as caught:
        narrowed(settings, RetrievalOverride(template="v9"))
    assert caught.value.param == "lorag.retrieval.template"


def test_a_sweep_point_the_mode_narrowed_is_clipped_and_never_wins() -> None:
    from cli.mode_report import ModeSummary, Outcome
    from cli.sweep import SweepRow, parse_vary, points, winner

    def row(asked: dict, answered: dict, right: int) -> SweepRow:
        outcomes = [
            Outcome(
                "rag",
                "q",
                "a",
                "a" if i < right else "b",
                i < right,
                False,
                None,
                None,
                1.0,
                5,
                settings=answered,
            )
            for i in range(4)
        ]
        return SweepRow(asked, ModeSummary("rag", outcomes))

    tried = row({"top_k": 3, "relative_cutoff": None}, {"top_k": 3, "relative_cutoff": None}, 2)
    clipped = row({"top_k": 5, "relative_cutoff": None}, {"top_k": 3, "relative_cutoff": None}, 4)
    assert clipped.clipped == ["top_k"] and tried.clipped == []
    assert winner([tried, clipped]) is tried  # the better score was not what was asked
    grid = parse_vary(["top_k=3,5", "relative_cutoff=none,0.8", "template=v2"])
    assert len(points(grid)) == 4 and points(grid)[1]["relative_cutoff"] == 0.8
    with pytest.raises(InvalidRequest) as caught:
        parse_vary(["temperature=0.1"])
    assert caught.value.param == "vary" and "top_k" in caught.value.message
