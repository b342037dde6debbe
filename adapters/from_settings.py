"""Building the registry and the base model's description from the one `Settings` object."""

from __future__ import annotations

from pathlib import Path

from adapters.base_model import BaseModelInfo
from adapters.errors import BaseModelUnavailable
from adapters.sqlite_registry import SqliteRegistry
from adapters.store import AdapterStore
from lorag.settings import Settings
from service.base_model import prepare_bundled_model, resolve_base_model, served_model_name

__all__ = ["base_model_info", "open_registry"]


def open_registry(settings: Settings, *, busy_timeout_s: float = 30.0) -> SqliteRegistry:
    """The SQLite registry at `settings.registry_path`, storing under `settings.adapters_dir`.

    `busy_timeout_s`: how long a call waits for another process's write lock before
    `RegistryBusy` (the gateway passes `settings.registry_busy_timeout_s`, shorter)."""
    return SqliteRegistry(
        settings.registry_path,
        AdapterStore(settings.adapters_dir),
        busy_timeout_s=busy_timeout_s,
    )


def base_model_info(settings: Settings) -> BaseModelInfo:
    """The served base model: a local folder, the bundled model (prepared on first use), or a
    hub id already in the local Hugging Face cache (nothing is downloaded)."""
    source = resolve_base_model(settings)
    name = served_model_name(settings)
    if Path(source).is_dir():
        return BaseModelInfo.from_folder(Path(source), name)
    if settings.base_model is None:
        return BaseModelInfo.from_folder(prepare_bundled_model(settings), name)
    return BaseModelInfo.from_folder(_cached_hub_folder(source), name)


def _cached_hub_folder(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, local_files_only=True, allow_patterns=["*.json", "*.safetensors"]
            )
        )
    except Exception as exc:  # huggingface_hub raises several types for "not there"
        raise BaseModelUnavailable(
            f"base model {repo_id!r} is neither a folder nor in the local Hugging Face cache "
            f"({type(exc).__name__}): download it first or set LORAG_BASE_MODEL to a folder"
        ) from exc
