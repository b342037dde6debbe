"""Validation of an adapter artifact: a peft LoRA folder that vLLM can serve on this base.

The artifact is peft's on-disk format, `adapter_config.json` + `adapter_model.safetensors`.
`validate_artifact` reads both files once, hashes exactly the bytes it checks, and proves:

- the config is JSON with `peft_type` "LORA", a positive rank <= the served maximum, target
  modules that are linear layers of the base, and no feature vLLM cannot serve (DoRA, bias...);
- the weights load, hold only `lora_A`/`lora_B` matrices of linear layers the base has, with the
  shapes those layers imply (A: (r, in_features), B: (out_features, r)) and finite values.

The shapes decide whether the adapter fits the base; the config's `base_model_name_or_path` is
only recorded (`declared_base`), since a folder path says little about the weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.artifact_files import ARTIFACT_FILES, CONFIG_FILE, WEIGHTS_FILE, artifact_digest
from adapters.errors import InvalidArtifact
from adapters.models import ArtifactInfo
from lorag.base_model import BaseModelInfo

__all__ = ["validate_artifact"]

_LORA_TENSOR = re.compile(r"base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight")

# Config fields whose non-default values change what the adapter computes in ways vLLM does not
# implement: field -> (is it set?, why it is refused).
_UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "use_dora": (lambda v: bool(v), "DoRA adapters cannot be served"),
    "lora_bias": (lambda v: bool(v), "LoRA bias cannot be served"),
    "bias": (lambda v: v not in (None, "none"), "adapter bias cannot be served"),
    "modules_to_save": (
        lambda v: bool(v),
        "full copies of modules (modules_to_save) are not served",
    ),
    "trainable_token_indices": (lambda v: bool(v), "trainable token embeddings are not served"),
    "layer_replication": (lambda v: bool(v), "layer_replication cannot be served"),
    "alora_invocation_tokens": (lambda v: bool(v), "activated LoRA (aLoRA) cannot be served"),
    "use_qalora": (lambda v: bool(v), "QA-LoRA cannot be served"),
    "use_bdlora": (lambda v: bool(v), "block-diagonal LoRA cannot be served"),
    "target_parameters": (lambda v: bool(v), "LoRA on raw parameters cannot be served"),
    "init_lora_weights": (
        lambda v: (
            isinstance(v, str)
            and v.lower() not in ("gaussian", "eva", "orthogonal", "mica", "lora_ga")
        ),
        "this init changes the base weights (PiSSA, OLoRA, LoftQ...): convert it to plain LoRA",
    ),
}


def validate_artifact(folder: Path, base: BaseModelInfo, max_rank: int) -> ArtifactInfo:
    """Check that `folder` holds a LoRA adapter servable on `base` with rank <= `max_rank`.

    Raises InvalidArtifact whose `param` names the file or config field at fault.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidArtifact(f"{folder} is not a folder", param="path")
    contents = {name: _read_artifact_file(folder, name) for name in ARTIFACT_FILES}
    config = _parse_config(contents[CONFIG_FILE])
    rank_limit, alpha = _check_config(config, base, max_rank)
    shapes = _check_weights(contents[WEIGHTS_FILE], base, rank_limit, config)
    declared = config.get("base_model_name_or_path")
    return ArtifactInfo(
        sha256=artifact_digest(
            {n: hashlib.sha256(data).hexdigest() for n, data in contents.items()}
        ),
        size_bytes=sum(len(data) for data in contents.values()),
        rank=max(rank for rank in shapes.values()),
        alpha=alpha,
        targets=tuple(sorted({module.rsplit(".", 1)[-1] for module in shapes})),
        tensor_count=2 * len(shapes),
        declared_base=str(declared) if declared else None,
    )


def _read_artifact_file(folder: Path, name: str) -> bytes:
    path = folder / name
    if not path.is_file():
        raise InvalidArtifact(
            f"{folder} has no {name}: an adapter is {' + '.join(ARTIFACT_FILES)}", param=name
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArtifact(f"cannot read {path}: {exc}", param=name) from exc


def _parse_config(raw: bytes) -> dict[str, Any]:
    try:
        config = json.loads(raw)
    except ValueError as exc:
        raise InvalidArtifact(f"{CONFIG_FILE} is not valid JSON: {exc}", param=CONFIG_FILE) from exc
    if not isinstance(config, dict):
        raise InvalidArtifact(f"{CONFIG_FILE} does not hold a JSON object", param=CONFIG_FILE)
    return config


def _check_config(
    config: Mapping[str, Any], base: BaseModelInfo, max_rank: int
) -> tuple[int, float]:
    """Check the config's fields; return (largest declared rank, lora_alpha)."""
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise InvalidArtifact(
            f"{CONFIG_FILE}: peft_type is {peft_type!r}; only LORA adapters can be served",
            param="peft_type",
        )
    for key, (is_set, why) in _UNSUPPORTED.items():
        if is_set(config.get(key)):
            raise InvalidArtifact(f"{CONFIG_FILE}: {key}={config[key]!r}: {why}", param=key)
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise InvalidArtifact(f"{CONFIG_FILE}: r must be an integer >= 1, got {rank!r}", param="r")
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pattern.values()
    ):
        raise InvalidArtifact(
            f"{CONFIG_FILE}: rank_pattern must map module patterns to integers >= 1",
            param="rank_pattern",
        )
    largest = max([rank, *pattern.values()])
    if largest > max_rank:
        raise InvalidArtifact(
            f"{CONFIG_FILE}: LoRA rank {largest} is above the served maximum {max_rank} "
            "(LORAG_MAX_LORA_RANK)",
            param="r",
        )
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise InvalidArtifact(
            f"{CONFIG_FILE}: lora_alpha must be a positive number, got {alpha!r}",
            param="lora_alpha",
        )
    _check_targets(config.get("target_modules"), base)
    return largest, float(alpha)


def _check_targets(targets: object, base: BaseModelInfo) -> None:
    if isinstance(targets, str):  # a regex or "all-linear": the weights' names decide
        return
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise InvalidArtifact(
            f"{CONFIG_FILE}: target_modules must be a non-empty list of module names",
            param="target_modules",
        )
    known = base.linear_module_names
    unknown = sorted(t for t in targets if t.rsplit(".", 1)[-1] not in known)
    if unknown:
        raise InvalidArtifact(
            f"{CONFIG_FILE}: target_modules {unknown} are not linear layers of the base model "
            f"{base.name!r} (it has {sorted(known)})",
            param="target_modules",
        )


def _check_weights(
    raw: bytes, base: BaseModelInfo, max_rank: int, config: Mapping[str, Any]
) -> dict[str, int]:
    """Load the weights and check every tensor; return module path -> its rank."""
    tensors = _load_tensors(raw)
    parts: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _LORA_TENSOR.fullmatch(key)
        if match is None:
            raise InvalidArtifact(
                f"{WEIGHTS_FILE}: unexpected tensor {key!r}: only lora_A/lora_B weights of "
                "linear layers can be served",
                param=WEIGHTS_FILE,
            )
        parts.setdefault(match["module"], {})[match["part"]] = tensor
    if not parts:
        raise InvalidArtifact(f"{WEIGHTS_FILE} holds no LoRA weights", param=WEIGHTS_FILE)
    declared = config.get("base_model_name_or_path")
    hint = f" (it declares base {declared!r})" if declared else ""
    ranks: dict[str, int] = {}
    for module, pair in sorted(parts.items()):
        if module not in base.linear_shapes:
            raise InvalidArtifact(
                f"{WEIGHTS_FILE}: patches {module!r}, which the base model {base.name!r} does "
                f"not have: the adapter was made for another model{hint}",
                param=WEIGHTS_FILE,
            )
        if set(pair) != {"A", "B"}:
            missing = "lora_B" if "A" in pair else "lora_A"
            raise InvalidArtifact(
                f"{WEIGHTS_FILE}: {module} has no {missing} weight", param=WEIGHTS_FILE
            )
        ranks[module] = _check_pair(module, pair["A"], pair["B"], base, max_rank, hint)
    return ranks


def _load_tensors(raw: bytes) -> dict[str, Any]:
    from safetensors.torch import load  # torch is only needed here

    try:
        return load(raw)
    except Exception as exc:  # safetensors raises its own types for every kind of damage
        raise InvalidArtifact(
            f"{WEIGHTS_FILE} cannot be loaded (corrupt or not safetensors): {exc}",
            param=WEIGHTS_FILE,
        ) from exc


def _check_pair(
    module: str, lora_a: Any, lora_b: Any, base: BaseModelInfo, max_rank: int, hint: str
) -> int:
    out_features, in_features = base.linear_shapes[module]
    rank = lora_a.shape[0] if lora_a.dim() == 2 else 0
    expected = {"lora_A": (rank or "r", in_features), "lora_B": (out_features, rank or "r")}
    for part, tensor in (("lora_A", lora_a), ("lora_B", lora_b)):
        if tuple(tensor.shape) != expected[part]:
            raise InvalidArtifact(
                f"{WEIGHTS_FILE}: {module}.{part} has shape {tuple(tensor.shape)} but the base "
                f"model {base.name!r} needs {expected[part]}: the adapter was made for another "
                f"model{hint}",
                param=WEIGHTS_FILE,
            )
        if not tensor.is_floating_point() or not bool(tensor.isfinite().all()):
            raise InvalidArtifact(
                f"{WEIGHTS_FILE}: {module}.{part} holds non-finite or non-float values",
                param=WEIGHTS_FILE,
            )
    if rank > max_rank:
        raise InvalidArtifact(
            f"{WEIGHTS_FILE}: {module} has rank {rank}, above the config's largest rank {max_rank}",
            param=WEIGHTS_FILE,
        )
    return rank
