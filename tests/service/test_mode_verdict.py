"""`lorag eval answers`' verdict: which mode pays on the data, with the guides' thresholds
(pure logic; the report against the real gateway is in test_retrieval.py)."""

from __future__ import annotations

from cli.mode_report import ModeSummary, Outcome, kind_of, verdict


def summary(mode: str, kind: str, correct: int, seconds: float, prompt_tokens: int) -> ModeSummary:
    outcomes = [
        Outcome(
            mode=mode,
            question=f"q{i}",
            expected="x",
            reply="x" if i < correct else "",
            correct=i < correct,
            exact=False,
            cited_doc=None,
            citation_ok=None,
            seconds=seconds,
            tokens=10,
            prompt_tokens=prompt_tokens,
        )
        for i in range(100)
    ]
    return ModeSummary(mode, outcomes, kind)


def test_kinds_from_the_model_cards() -> None:
    assert kind_of(None) == "base"
    assert kind_of({"adapter": False, "retrieval": False, "instructions": True}) == "prompt-only"
    assert kind_of({"adapter": False, "retrieval": True}) == "rag"
    assert kind_of({"adapter": True, "retrieval": False}) == "adapter"
    assert kind_of({"adapter": True, "retrieval": True, "instructions": True}) == (
        "hybrid + instructions"
    )


def test_the_cheapest_mode_close_to_the_best_pays() -> None:
    modes = [
        summary("base", "base", 20, 0.5, 40),
        summary("prompt", "prompt-only", 60, 0.5, 70),
        summary("rag", "rag", 88, 0.8, 400),
        summary("hybrid", "hybrid", 90, 1.1, 400),
    ]
    text = verdict(modes)
    assert "- base (base): 20%, below 70%: rethink" in text
    assert "- prompt (prompt-only): 60%, below 70%: rethink; +40 points over base" in text
    assert "- rag (rag): 88%, above 85%: on track; +68 points over base for 1.6x its latency" in (
        text
    )
    assert "and +360 prompt tokens per question" in text
    # hybrid is 2 points better but slower: RAG is within the 3-point margin and pays
    assert "**Pays on this data: rag** (rag; within 2 points of hybrid (90%) and faster)." in text


def test_nothing_good_enough_says_rethink() -> None:
    text = verdict([summary("base", "base", 30, 0.5, 40), summary("a", "adapter", 75, 0.6, 40)])
    assert "- a (adapter): 75%, promising" in text
    assert "**Pays on this data: a** (adapter; the most accurate)." in text
    assert "No mode reaches" not in text
    text = verdict([summary("base", "base", 30, 0.5, 40)])
    assert "No mode reaches 70%" in text
