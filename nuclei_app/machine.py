"""Which machine a figure was measured on: the processor's name and features, the cores.

Training records and benchmark printouts name the processor, because the same 2-core
machine has been backed by different CPUs from one day to the next (one ran the float32
forward pass three times slower than another): figures are compared on the same processor.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_field(name: str, cpuinfo: Path = CPUINFO) -> list[str]:
    """Every value of ``name`` in /proc/cpuinfo (one per core); [] where there is none (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return []
    return [value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())
            if key.strip() == name]


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    return {flag for line in cpu_field("flags", cpuinfo) for flag in line.split()}


def cpu_name(cpuinfo: Path = CPUINFO) -> str:
    """The processor's model name ("AMD EPYC 9R14 ..."), or what Python knows elsewhere."""
    names = cpu_field("model name", cpuinfo)
    return names[0] if names else (platform.processor() or "unknown processor")


def core_count() -> int:
    """Cores this process may run on (a container's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_machine() -> str:
    return f"{platform.machine()}, {cpu_name()}, {core_count()} CPU cores"


# Instruction sets on which TensorFlow (2.9 and later, x86 Linux) turns its oneDNN kernels on
# by itself: AVX-512 VNNI / BF16, AVX-VNNI, AMX (Intel since Cascade Lake, AMD since Zen 4).
ONEDNN_DEFAULT_FLAGS = {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}


def onednn_by_default(cpuinfo: Path = CPUINFO) -> bool:
    """True on the processors where TensorFlow's oneDNN kernels are on unless turned off."""
    return bool(cpu_flags(cpuinfo) & ONEDNN_DEFAULT_FLAGS)


def tensorflow_runs_onednn() -> bool:
    """Whether this process's TensorFlow computes on its oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS``
    and the processor decide, when TensorFlow loads); TensorFlow's own answer where it gives one."""
    try:
        from tensorflow.python.util._pywrap_util_port import IsMklEnabled  # not public: guarded
    except ImportError:
        setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
        return setting in ("1", "true") or (setting not in ("0", "false") and onednn_by_default())
    return bool(IsMklEnabled())
