"""validate_artifact on real peft adapters: what it accepts, and each way it refuses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from adapters.artifact import validate_artifact
from adapters.artifact_files import CONFIG_FILE, WEIGHTS_FILE
from adapters.errors import BaseModelUnavailable, InvalidArtifact
from lorag.base_model import BaseModelInfo

MAX_RANK = 16


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / CONFIG_FILE).read_text())
    config.update(changes)
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def _refusal(folder: Path, base: BaseModelInfo, max_rank: int = MAX_RANK) -> InvalidArtifact:
    with pytest.raises(InvalidArtifact) as err:
        validate_artifact(folder, base, max_rank)
    assert err.value.status == 400
    return err.value


def test_base_model_info_reads_shapes_from_headers(base_info: BaseModelInfo) -> None:
    assert base_info.name == "smollm2-135m-instruct"
    assert len(base_info.linear_shapes) == 30 * 7
    assert base_info.linear_shapes["model.layers.0.self_attn.q_proj"] == (576, 576)
    assert base_info.linear_shapes["model.layers.29.self_attn.k_proj"] == (192, 576)
    assert base_info.linear_shapes["model.layers.3.mlp.down_proj"] == (576, 1536)
    assert not any("embed" in module for module in base_info.linear_shapes)
    assert base_info.linear_module_names == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }


def test_base_model_info_refuses_a_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BaseModelUnavailable, match="safetensors"):
        BaseModelInfo.from_folder(tmp_path)


def test_valid_adapter(lora_a: Path, base_info: BaseModelInfo) -> None:
    info = validate_artifact(lora_a, base_info, MAX_RANK)
    assert (info.rank, info.alpha, info.targets) == (8, 16.0, ("q_proj", "v_proj"))
    assert info.tensor_count == 30 * 2 * 2
    assert info.size_bytes == sum((lora_a / n).stat().st_size for n in (CONFIG_FILE, WEIGHTS_FILE))
    # the digest is `sha256sum adapter_config.json adapter_model.safetensors | sha256sum`
    manifest = "".join(
        f"{hashlib.sha256((lora_a / n).read_bytes()).hexdigest()}  {n}\n"
        for n in (CONFIG_FILE, WEIGHTS_FILE)
    )
    assert info.sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    assert info.declared_base is not None and info.declared_base.endswith("smollm2-135m-instruct")


def test_every_linear_target(lora_wide: Path, base_info: BaseModelInfo) -> None:
    info = validate_artifact(lora_wide, base_info, MAX_RANK)
    assert info.rank == 4
    assert set(info.targets) == base_info.linear_module_names
    assert info.tensor_count == 30 * 7 * 2


def test_rank_equal_to_max_is_accepted(lora_a: Path, base_info: BaseModelInfo) -> None:
    assert validate_artifact(lora_a, base_info, 8).rank == 8


def test_not_a_folder(tmp_path: Path, base_info: BaseModelInfo) -> None:
    err = _refusal(tmp_path / "nope", base_info)
    assert err.param == "path" and "not a folder" in err.message


@pytest.mark.parametrize("missing", [CONFIG_FILE, WEIGHTS_FILE])
def test_missing_file(
    missing: str, lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    (folder / missing).unlink()
    err = _refusal(folder, base_info)
    assert err.param == missing and f"has no {missing}" in err.message


def test_rank_above_max(lora_a: Path, base_info: BaseModelInfo) -> None:
    err = _refusal(lora_a, base_info, max_rank=4)
    assert err.param == "r"
    assert "rank 8 is above the served maximum 4" in err.message


def test_rank_pattern_above_max(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    _edit_config(folder, rank_pattern={"v_proj": 32})
    assert "rank 32" in _refusal(folder, base_info).message


def test_wrong_base_model(lora_other_base: Path, base_info: BaseModelInfo) -> None:
    err = _refusal(lora_other_base, base_info)
    assert err.param == WEIGHTS_FILE
    assert "has shape (8, 64)" in err.message and "needs (8, 576)" in err.message
    assert "made for another model" in err.message


def test_corrupt_safetensors(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    err = _refusal(folder, base_info)
    assert err.param == WEIGHTS_FILE and "cannot be loaded" in err.message


def test_garbage_weights_file(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    (folder / WEIGHTS_FILE).write_bytes(b"this is not a safetensors file at all")
    assert _refusal(folder, base_info).param == WEIGHTS_FILE


def test_config_not_json(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    (folder / CONFIG_FILE).write_text("{not json")
    err = _refusal(folder, base_info)
    assert err.param == CONFIG_FILE and "not valid JSON" in err.message


def test_ia3_is_not_lora(ia3: Path, base_info: BaseModelInfo) -> None:
    err = _refusal(ia3, base_info)
    assert err.param == "peft_type"
    assert "'IA3'" in err.message and "only LORA" in err.message


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("use_dora", True, "DoRA"),
        ("bias", "all", "bias"),
        ("modules_to_save", ["lm_head"], "modules"),
        ("init_lora_weights", "pissa", "convert it to plain LoRA"),
        ("r", 0, "r must be an integer"),
        ("lora_alpha", "big", "lora_alpha"),
    ],
)
def test_unservable_config_fields(
    field: str,
    value: object,
    words: str,
    lora_a: Path,
    copy_of: Callable[[Path], Path],
    base_info: BaseModelInfo,
) -> None:
    folder = copy_of(lora_a)
    _edit_config(folder, **{field: value})
    err = _refusal(folder, base_info)
    assert err.param == field and words in err.message


def test_target_module_the_base_lacks(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    _edit_config(folder, target_modules=["q_proj", "c_attn"])
    err = _refusal(folder, base_info)
    assert err.param == "target_modules" and "['c_attn']" in err.message


def test_unexpected_tensor(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    tensors = load_file(folder / WEIGHTS_FILE)
    some = next(iter(tensors.values()))
    tensors["base_model.model.lm_head.weight"] = some.clone()
    save_file(tensors, folder / WEIGHTS_FILE)
    err = _refusal(folder, base_info)
    assert "unexpected tensor 'base_model.model.lm_head.weight'" in err.message


def test_missing_half_of_a_pair(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    tensors = load_file(folder / WEIGHTS_FILE)
    del tensors["base_model.model.model.layers.5.self_attn.v_proj.lora_B.weight"]
    save_file(tensors, folder / WEIGHTS_FILE)
    err = _refusal(folder, base_info)
    assert "model.layers.5.self_attn.v_proj has no lora_B" in err.message


def test_non_finite_weights(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    tensors = load_file(folder / WEIGHTS_FILE)
    tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"][0, 0] = float("nan")
    save_file(tensors, folder / WEIGHTS_FILE)
    assert "non-finite" in _refusal(folder, base_info).message


def test_declared_base_name_is_recorded_not_decisive(
    lora_a: Path, copy_of: Callable[[Path], Path], base_info: BaseModelInfo
) -> None:
    folder = copy_of(lora_a)
    _edit_config(folder, base_model_name_or_path="someone/other-model")
    info = validate_artifact(folder, base_info, MAX_RANK)
    assert info.declared_base == "someone/other-model"
