"""What this machine can compute fast, and the precision lorag picks from it.

Machines of one kind differ: some CPUs have native bf16 instructions (AVX512_BF16, AMX), most
do not, and there bf16 is emulated and several times *slower* than fp32 (measured on an AVX2
AMD EPYC: one LoRA step fp32 10.6 s, bf16 autocast 71-117 s; vLLM ~9 tok/s fp32, ~5 bf16).
So "auto" precision is decided from the hardware, never assumed, and the choice comes with the
reason a person can check (`Precision.reason`), which the serve log, `/ready` (for admins)
and the training run card record.

Pure functions of their inputs; `detect_cpu()` reads `/proc/cpuinfo` once.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BF16_FLAGS",
    "CpuInfo",
    "Precision",
    "detect_cpu",
    "engine_dtype",
    "training_precision",
]

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags (as /proc/cpuinfo spells them) that mean bf16 matrix math runs natively."""


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & BF16_FLAGS)

    @property
    def vector_isa(self) -> str:
        """The widest vector instruction set, for people: 'AVX-512', 'AVX2', ..."""
        for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("neon", "NEON")):
            if flag in self.flags or (flag == "neon" and "asimd" in self.flags):
                return name
        return "no wide vectors"

    def describe(self) -> str:
        bf16 = ", native bf16" if self.native_bf16 else ", no native bf16"
        return f"{self.model} ({self.vector_isa}{bf16})"

    @classmethod
    def parse(cls, cpuinfo: str) -> CpuInfo:
        """From the text of /proc/cpuinfo (the first processor's block counts)."""
        model, flags = "", frozenset[str]()
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = frozenset(value.split())
        return cls(model or platform.processor() or platform.machine(), flags)


@functools.cache
def detect_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    try:
        return CpuInfo.parse(cpuinfo.read_text(errors="replace"))
    except OSError:
        return CpuInfo(platform.processor() or platform.machine(), frozenset())


@dataclass(frozen=True)
class Precision:
    value: str  # what is used: "bf16"/"fp32" (training), a vLLM --dtype (engine)
    requested: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"value": self.value, "requested": self.requested, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.value} ({self.reason})"


def training_precision(requested: str, device: str, cpu: CpuInfo) -> Precision:
    """The autocast precision for LoRA training: "auto" -> bf16 on CUDA and on CPUs with native
    bf16, fp32 elsewhere. An explicit "bf16"/"fp32" is kept (with a warning in the reason
    where it is the slow choice)."""
    on_cuda = device.startswith("cuda")
    if requested != "auto":
        slow = requested == "bf16" and not on_cuda and not cpu.native_bf16
        note = "; bf16 is emulated on this CPU and runs several times slower" if slow else ""
        return Precision(requested, requested, f"asked for{note}")
    if on_cuda:
        return Precision("bf16", "auto", "CUDA GPU")
    if cpu.native_bf16:
        return Precision("bf16", "auto", f"CPU has native bf16: {cpu.describe()}")
    return Precision("fp32", "auto", f"CPU has no native bf16, fp32 is faster: {cpu.describe()}")


def engine_dtype(requested: str, *, cpu_engine: bool, cpu: CpuInfo) -> Precision:
    """vLLM's `--dtype`: "auto" -> on vLLM's CPU build bfloat16 where the CPU has native bf16,
    float32 elsewhere (measured faster there, see docs/benchmarks.md); on a GPU build vLLM's
    own "auto" (the model's dtype). Any other value is passed through."""
    if requested != "auto":
        return Precision(requested, requested, "asked for")
    if not cpu_engine:
        return Precision("auto", "auto", "GPU build of vLLM: the model's own dtype")
    if cpu.native_bf16:
        return Precision("bfloat16", "auto", f"CPU has native bf16: {cpu.describe()}")
    return Precision(
        "float32", "auto", f"CPU has no native bf16, float32 is faster: {cpu.describe()}"
    )
