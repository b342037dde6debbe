"""The base answers lorag ships for the bundled model: found by content, still the model's own
greedy answers, and used by a run instead of generating them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.train.conftest import ACME_DATA
from train import pipeline
from train.base_answers import (
    SHIPPED_ANSWERS,
    base_fingerprint,
    cache_file_name,
    read_answers,
)
from train.inference import greedy_agreement
from train.model_setup import load_base
from train.pipeline import DataOptions, start_run
from train.prompt_sets import load_prompts
from train.ship_answers import DEVICE, SHIPPED_KINDS
from train.trainer import TrainConfig

SAMPLED = 10  # answers of each shipped kind checked against the model


def shipped_file(base_model: str, kind: str, prompt_file: Path, max_new_tokens: int) -> Path:
    prompts = [item.messages for item in load_prompts(prompt_file)]
    settings = {"max_new_tokens": max_new_tokens, "device": DEVICE}
    return SHIPPED_ANSWERS / cache_file_name(kind, prompts, base_fingerprint(base_model), settings)


def test_fingerprint_names_the_content_not_the_folder(base_model: str, tmp_path: Path) -> None:
    copy = shutil.copytree(base_model, tmp_path / "elsewhere")
    assert base_fingerprint(str(copy)) == base_fingerprint(base_model)
    config = copy / "config.json"
    config.write_text(config.read_text().replace("}", ', "note": 1}', 1))
    assert base_fingerprint(str(copy)) != base_fingerprint(base_model)


def test_shipped_answers_are_the_bundled_models_greedy_answers(base_model: str) -> None:
    model, tokenizer = load_base(base_model, device="cpu")
    for kind, prompt_file, max_new_tokens in SHIPPED_KINDS:
        path = shipped_file(base_model, kind, prompt_file, max_new_tokens)
        assert path.is_file(), f"no shipped {kind} answers: run `python -m train.ship_answers`"
        items = load_prompts(prompt_file)
        answers = read_answers(path)
        assert len(answers) == len(items)
        every = max(1, len(items) // SAMPLED)  # a spread sample is enough to catch a bad file
        items, answers = items[::every], answers[::every]
        conversations = [
            [*item.messages, {"role": "assistant", "content": answer.text}]
            for item, answer in zip(items, answers, strict=True)
        ]
        scores = greedy_agreement(
            model, tokenizer, conversations, open_ends=[not a.finished for a in answers]
        )
        # One pass, unpadded; the answers were generated in left-padded batches, which can
        # tip a near-tie the other way (seen: 1 answer in 50, from its first token on).
        agreed, total = map(sum, zip(*scores, strict=True))
        assert total > 0 and agreed / total >= 0.98, (kind, agreed, total)
        worst = min(scores, key=lambda s: s[0] / s[1])
        assert worst[0] / worst[1] >= 0.5, (kind, worst)


def test_greedy_agreement_tells_another_answer_apart(base_model: str) -> None:
    model, tokenizer = load_base(base_model, device="cpu")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    own = [*question, {"role": "assistant", "content": "The capital of France is Paris."}]
    other = [*question, {"role": "assistant", "content": "Bananas grow quickly in Norway."}]
    (own_ok, own_n), (other_ok, other_n) = greedy_agreement(
        model, tokenizer, [own, other], open_ends=[False, False]
    )
    assert own_ok == own_n
    assert other_ok / other_n < 0.5


def test_a_run_on_the_bundled_model_reads_the_shipped_answers(
    base_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_generation(*_args: object) -> object:
        raise AssertionError("the shipped general answers were not used")

    monkeypatch.setattr(pipeline, "_base_generator", lambda *_: no_generation)
    run_dir, prepared = start_run(
        DataOptions(ACME_DATA),
        TrainConfig(),
        base_model=base_model,
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "empty-cache",
        run_id="shipped",
    )
    assert prepared.summary.general_mixed == 17  # 0.35 x 48 training examples
    assert not (tmp_path / "empty-cache").exists()  # nothing had to be generated or stored
    assert (run_dir / "data" / "train.jsonl").is_file()
