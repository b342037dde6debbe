"""Continuing a published version (`lorag train --from NAME@vN`): the parent's LoRA shape and
owner are kept, its golden checks travel with its gate verdict, and the gate compares the
child with it. One real run: a short DPO continuation of the session's ACME adapter."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.train.background import TrainedRun
from tests.train.dpo_job import GOLDEN, registry_in
from train.config import GateThresholds
from train.errors import InvalidOption
from train.gate_report import ControlReport, GateReport, GoldenReport, ParentReport
from train.gate_text import describe_gate
from train.golden import parse_golden_item
from train.parent import ParentVersion, parent_shape
from train.publish import publish_owner

PARENT = ParentVersion(
    ref="support@v3",
    name="support",
    version=3,
    sha256="0" * 64,
    owner=None,
    origin="train:run-1",
    base_model="smollm2-135m-instruct",
    rank=16,
    alpha=32.0,
    targets=("v_proj", "q_proj"),
)


def test_a_child_keeps_its_parents_lora_shape() -> None:
    assert parent_shape(PARENT, {"lr": 1e-4}) == {
        "lr": 1e-4,
        "rank": 16,
        "alpha": 32,
        "target_modules": ("q_proj", "v_proj"),
    }
    same = {"rank": 16, "target_modules": ("v_proj", "q_proj")}  # the same set, other order
    assert parent_shape(PARENT, same)["target_modules"] == ("q_proj", "v_proj")
    with pytest.raises(InvalidOption) as caught:
        parent_shape(PARENT, {"rank": 8, "alpha": 32, "target_modules": ("q_proj",)})
    assert caught.value.message == (
        "--rank 8, --target-modules q_proj conflicts with support@v3: a continued adapter "
        "starts from its parent's weights and keeps its LoRA shape (rank 16, alpha 32, targets "
        "q_proj,v_proj); drop --rank and --target-modules"
    )
    assert caught.value.param == "from"
    odd = ParentVersion(**{**PARENT.__dict__, "alpha": 12.5})
    with pytest.raises(InvalidOption, match=r"lora_alpha 12\.5"):
        parent_shape(odd, {})


def test_a_child_of_an_owned_version_keeps_its_owner() -> None:
    owned = ParentVersion(**{**PARENT.__dict__, "owner": "acme"})
    assert publish_owner(promote=None, owner=None, shared=False, parent=owned) == "acme"
    assert publish_owner(promote="acme:support", owner="acme", shared=False, parent=owned) == (
        "acme"
    )
    for options in (
        {"promote": None, "owner": None, "shared": True},
        {"promote": None, "owner": "globex", "shared": False},
        {"promote": "globex:support", "owner": None, "shared": False},
    ):
        with pytest.raises(InvalidOption) as caught:
            publish_owner(**options, parent=owned)
        assert caught.value.message.startswith("support@v3 is owned by tenant acme: ")
    # a shared parent: the usual rules
    assert publish_owner(promote="globex:support", owner=None, shared=False, parent=PARENT) == (
        "globex"
    )
    assert publish_owner(promote=None, owner=None, shared=True, parent=PARENT) is None


CONTROL: ControlReport = {
    "prompts": 1,
    "keywords_checked": 0,
    "keywords_lost": [],
    "base_nll": 1.0,
    "adapter_nll": 1.0,
    "nll_rise": 0.0,
    "samples": [],
}


def _golden_report(file: str, parent_answer: str, adapter_answer: str) -> GoldenReport:
    item = parse_golden_item(3, {"prompt": "Reset my router?", "keywords": ["[ACME]"]})
    return {
        "file": file,
        "prompts": 1,
        "checks": 1,
        "adapter_failed": [],
        "base_failed": 1,
        "samples": [
            {
                "line": 3,
                "prompt": item.prompt,
                "base": "Unplug it.",
                "adapter": adapter_answer,
                "base_checks": item.check("Unplug it."),
                "adapter_checks": item.check(adapter_answer),
                "parent": parent_answer,
                "parent_checks": item.check(parent_answer),
            }
        ],
        "sha256": f"{file}-digest",
        "text": '{"prompt": "Reset my router?", "keywords": ["[ACME]"]}\n',
    }


def _child(parent_loss: float, adapter_answer: str) -> GateReport:
    parent: ParentReport = {
        "ref": "support@v3",
        "test_loss": parent_loss,
        "golden": [_golden_report("parent-golden.jsonl", "[ACME] Hold reset.", adapter_answer)],
    }
    measured = GateReport(
        passed=False,
        failures=[],
        test={"examples": 6, "base_loss": 3.6, "adapter_loss": 1.2},
        control=CONTROL,
        thresholds=GateThresholds().to_json(),
        golden=_golden_report("mine.jsonl", "x", "[ACME] Hold reset."),
        parent=parent,
    )
    return measured.rejudged(GateThresholds())


def test_the_gate_fails_a_regression_against_the_parent() -> None:
    kept = _child(parent_loss=1.5, adapter_answer="[ACME] Hold the reset button.")
    assert kept.passed, kept.failures
    worse = _child(parent_loss=1.0, adapter_answer="Hold the reset button.")
    assert not worse.passed and worse.judged
    assert worse.failures == [
        "test loss did not improve over the parent support@v3: adapter 1.2000 vs parent 1.0000",
        "golden checks the parent support@v3 passes failed on the adapter (1): "
        "parent-golden.jsonl line 3: keywords: missing '[ACME]'",
    ]
    assert worse.rejudged(GateThresholds(min_val_loss_gain=-1, max_golden_regressions=1)).passed
    summary = worse.summary()
    assert (summary["parent"], summary["test_loss_parent"], summary["golden_regressions"]) == (
        "support@v3",
        1.0,
        1,
    )
    # the verdict keeps every golden file it ran, each once: a grandchild is held to them all
    record = worse.record("train:child")
    assert [g["file"] for g in record["golden_sets"]] == ["mine.jsonl", "parent-golden.jsonl"]
    assert record["golden_sets"][1]["text"].startswith('{"prompt": "Reset my router?"')
    text = describe_gate(worse)
    assert (
        "  parent support@v3: test loss 1.0000; its golden checks (parent-golden.jsonl): "
        "adapter fails 1 of the 1 it passes" in text.splitlines()
    )


def test_dpo_continues_a_published_sft_version(
    dpo_run: TrainedRun,
    mixed_run: TrainedRun,
    base_info,
    base_model: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The session's ACME adapter, published as acme@v1 (owned by tenant shop, its gate
    verdict holding a golden set), continued by DPO for one step in the background
    (tests/train/dpo_job.py): the child starts from its weights, the run card names it, the
    gate compares with it (DPO's reference), and the child is published as acme@v2 for the
    same owner, inheriting the golden set."""
    from cli.main import main
    from train.parent import fetch_parent
    from train.publish import publish_run

    data_dir = dpo_run.run_dir.parent.parent
    registry = registry_in(data_dir)
    parent = fetch_parent(registry, "acme", base_name=base_info.name)  # the latest: v1
    assert (parent.ref, parent.owner, parent.rank, len(parent.golden_sets)) == (
        "acme@v1",
        "shop",
        16,
        1,
    )
    # the command line refuses another shape, or another owner, before anything runs
    monkeypatch.setenv("LORAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LORAG_BASE_MODEL", base_model)
    runs = sorted((data_dir / "runs").iterdir())
    command = ["train", "--method", "dpo", "--from", "acme@v1"]
    command += ["--data", str(data_dir / "prefs.jsonl")]
    assert main([*command, "--rank", "8", "--no-publish"]) == 2
    assert "--rank 8 conflicts with acme@v1: a continued adapter" in capsys.readouterr().err
    assert main([*command, "--shared"]) == 2
    assert "acme@v1 is owned by tenant shop: " in capsys.readouterr().err
    assert sorted((data_dir / "runs").iterdir()) == runs

    run_dir = dpo_run.run_dir
    card = json.loads((run_dir / "run_card.json").read_text())
    assert card["parent"]["ref"] == "acme@v1" and card["parent"]["owner"] == "shop"
    assert card["parent"]["golden_files"] == ["acme-golden.jsonl"]
    assert card["metrics"]["method"] == "dpo" and card["metrics"]["reference"] == "acme@v1"
    assert card["gate"]["parent"] == "acme@v1"

    # it started from the parent's weights: one small step moved them a little
    parent_weights = load_file(mixed_run.run_dir / "adapter" / "adapter_model.safetensors")
    child_weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    assert child_weights.keys() == parent_weights.keys()
    moved = [
        float((child_weights[k] - parent_weights[k]).norm() / parent_weights[k].norm())
        for k in parent_weights
        if ".lora_B." in k
    ]
    assert 0 < max(moved) < 0.2, max(moved)

    report = dpo_run.gate
    assert report.preferences is not None and report.preferences["reference"] == "acme@v1"
    assert report.preferences["pairs"] == 6 and report.preferences["closer_base"] is not None
    assert report.parent is not None and report.parent["ref"] == "acme@v1"
    (parent_golden,) = report.parent["golden"]
    first, second = parent_golden["samples"]
    assert first["parent_checks"][0]["passed"], first["parent"]  # the parent keeps its format
    assert not second["parent_checks"][0]["passed"]  # ...and never knew the zebra
    regressions = report.summary()["golden_regressions"]
    assert regressions == (0 if first["adapter_checks"][0]["passed"] else 1)

    with pytest.raises(InvalidOption, match="owned by tenant shop"):
        publish_run(run_dir, registry=registry, base=base_info, max_rank=16, name="acme")
    published = publish_run(
        run_dir,
        registry=registry,
        base=base_info,
        max_rank=16,
        name="acme",
        owner="shop",
        force=True,
    )
    child = published.version
    assert (child.served_name, child.owner, child.metrics["parent"]) == (
        "acme@v2",
        "shop",
        "acme@v1",
    )
    assert "(DPO), continuing acme@v1" in child.notes
    assert child.gate is not None
    golden_text = "".join(json.dumps(line) + "\n" for line in GOLDEN)
    assert [g["text"] for g in child.gate["golden_sets"]] == [golden_text]
