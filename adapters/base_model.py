"""What the registry knows about the base model: its served name and its linear layers' shapes.

`BaseModelInfo.from_folder` reads an HF model folder cheaply: `config.json` and the JSON headers
of its safetensors files (no tensor data, no torch). The shapes of the linear layers are what
an adapter is checked against: a LoRA fits this base when each of its A/B matrices has the shape
the layer it patches implies.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.errors import BaseModelUnavailable

__all__ = ["BaseModelInfo", "read_safetensors_header"]

_INDEX_FILE = "model.safetensors.index.json"
_SINGLE_FILE = "model.safetensors"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class BaseModelInfo:
    """The base model an adapter must fit.

    `linear_shapes` maps each linear module path (`model.layers.0.self_attn.q_proj`) to its
    weight's `(out_features, in_features)`.
    """

    name: str
    path: Path
    linear_shapes: Mapping[str, tuple[int, int]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def from_folder(cls, folder: Path, name: str | None = None) -> BaseModelInfo:
        """Read `folder` (an HF model folder); `name` defaults to the folder's name."""
        folder = Path(folder)
        config_file = folder / "config.json"
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BaseModelUnavailable(
                f"cannot read the base model's {config_file}: {exc}"
            ) from exc
        if not isinstance(config, dict):
            raise BaseModelUnavailable(f"{config_file} does not hold a JSON object")
        shapes: dict[str, tuple[int, int]] = {}
        for weights_file in _weight_files(folder):
            try:
                header = read_safetensors_header(weights_file)
            except (OSError, ValueError) as exc:
                raise BaseModelUnavailable(f"cannot read {weights_file}: {exc}") from exc
            shapes.update(_linear_shapes(header))
        if not shapes:
            raise BaseModelUnavailable(f"no linear layer weights found in {folder}")
        return cls(name=name or folder.name, path=folder, linear_shapes=MappingProxyType(shapes))

    @property
    def linear_module_names(self) -> frozenset[str]:
        """Short names of the linear modules (`q_proj`, `down_proj`, ...): what LoRA can target."""
        return frozenset(path.rsplit(".", 1)[-1] for path in self.linear_shapes)


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The JSON header of a safetensors file: tensor name -> {dtype, shape, data_offsets}.

    Raises ValueError when the file is too short or the header is not a JSON object.
    """
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError("file too short for a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if length <= 1 or length > _MAX_HEADER_BYTES:
            raise ValueError(f"implausible safetensors header length {length}")
        raw = handle.read(length)
    if len(raw) != length:
        raise ValueError("truncated safetensors header")
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _weight_files(folder: Path) -> Iterable[Path]:
    index = folder / _INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BaseModelUnavailable(f"cannot read {index}: {exc}") from exc
        return [folder / name for name in sorted(set(weight_map.values()))]
    single = folder / _SINGLE_FILE
    if single.is_file():
        return [single]
    raise BaseModelUnavailable(
        f"{folder} has neither {_SINGLE_FILE} nor {_INDEX_FILE}: not a safetensors HF model folder"
    )


def _linear_shapes(header: Mapping[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    shapes: dict[str, tuple[int, int]] = {}
    for tensor_name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not tensor_name.endswith(".weight") or not isinstance(shape, list) or len(shape) != 2:
            continue
        module = tensor_name.removesuffix(".weight")
        if "embed" in module.rsplit(".", 1)[-1]:
            continue
        shapes[module] = (int(shape[0]), int(shape[1]))
    return shapes
