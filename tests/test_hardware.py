"""Precision chosen from the hardware: bf16 only where it is native, fp32 elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lorag.hardware import CpuInfo, detect_cpu, engine_dtype, training_precision

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx fma avx2 bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx fma avx2 bmi2
"""
XEON_AVX512 = "model name\t: Intel Xeon\nflags\t\t: avx2 avx512f avx512bw\n"
XEON_BF16 = "model name\t: Intel Xeon Sapphire\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n"


def test_parse_reads_model_and_flags_of_the_first_processor() -> None:
    cpu = CpuInfo.parse(EPYC_AVX2)
    assert cpu.model == "AMD EPYC 7B13"
    assert {"avx2", "fma"} <= cpu.flags
    assert not cpu.native_bf16
    assert cpu.describe() == "AMD EPYC 7B13 (AVX2, no native bf16)"
    assert CpuInfo.parse(XEON_AVX512).vector_isa == "AVX-512"
    assert not CpuInfo.parse(XEON_AVX512).native_bf16  # AVX-512 alone does not make bf16 native
    assert CpuInfo.parse(XEON_BF16).native_bf16


@pytest.mark.parametrize(
    ("cpuinfo", "device", "expected"),
    [
        (EPYC_AVX2, "cpu", "fp32"),
        (XEON_AVX512, "cpu", "fp32"),
        (XEON_BF16, "cpu", "bf16"),
        (EPYC_AVX2, "cuda", "bf16"),
        (EPYC_AVX2, "cuda:1", "bf16"),
    ],
)
def test_training_precision_auto(cpuinfo: str, device: str, expected: str) -> None:
    choice = training_precision("auto", device, CpuInfo.parse(cpuinfo))
    assert (choice.value, choice.requested) == (expected, "auto")
    assert choice.reason  # the run card and the CLI print it


def test_training_precision_explicit_is_kept_and_warned_when_slow() -> None:
    slow = training_precision("bf16", "cpu", CpuInfo.parse(EPYC_AVX2))
    assert slow.value == "bf16" and "emulated" in slow.reason
    fine = training_precision("bf16", "cpu", CpuInfo.parse(XEON_BF16))
    assert fine.value == "bf16" and "emulated" not in fine.reason
    assert training_precision("fp32", "cuda", CpuInfo.parse(XEON_BF16)).value == "fp32"


def test_engine_dtype() -> None:
    avx2, bf16 = CpuInfo.parse(EPYC_AVX2), CpuInfo.parse(XEON_BF16)
    assert engine_dtype("auto", cpu_engine=True, cpu=avx2).value == "float32"
    assert engine_dtype("auto", cpu_engine=True, cpu=bf16).value == "bfloat16"
    assert engine_dtype("auto", cpu_engine=False, cpu=avx2).value == "auto"  # vLLM decides
    assert engine_dtype("float16", cpu_engine=True, cpu=avx2).value == "float16"
    assert "no native bf16" in engine_dtype("auto", cpu_engine=True, cpu=avx2).reason


def test_detect_cpu_reads_a_cpuinfo_file_and_survives_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(XEON_BF16)
    assert detect_cpu(path).native_bf16
    missing = detect_cpu(tmp_path / "absent")
    assert missing.flags == frozenset() and not missing.native_bf16


def test_the_embedded_engine_starts_vllm_with_the_dtype_chosen_here(tmp_path: Path) -> None:
    from lorag.settings import Settings
    from service.engine import EmbeddedEngine, build_engine, vllm_is_cpu_build

    engine = build_engine(Settings(data_dir=tmp_path, base_model=str(tmp_path)))
    assert isinstance(engine, EmbeddedEngine) and engine.precision is not None
    expected = engine_dtype("auto", cpu_engine=vllm_is_cpu_build(), cpu=detect_cpu())
    assert engine.precision == expected
    command = engine._command(port=1234)
    assert command[command.index("--dtype") + 1] == expected.value
    environment = engine._environment()
    assert environment["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # a quiet idle engine...
    assert environment["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) - 1))  # ...fast
