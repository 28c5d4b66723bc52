"""What every benchmark result records about the machine: CPU model, its vector flags, the kernel build.

    from bench.machine import describe
    result["machine"] = describe()          # add kernel_build=... when a part knows what ran

The fused kernels' speed depends on the instruction set (AVX-512 vs AVX2-only CPUs differ by
several times), so a figure without the CPU's flags and the kernel build it ran is not comparable.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ("avx512f", "avx2")

# What a CPU without AVX2 gives stock torch: ATen's default kernels, oneDNN and MKL at SSE4.
NO_AVX_STOCK = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
# Stock torch at AVX2, as on a CPU without AVX-512: ATen's dispatch, oneDNN and MKL capped.
STOCK_AT_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# The OpenCV path as a CPU without AVX runs it: OpenCV's run-time dispatch kept to its SSE4 code,
# NumPy to its x86-64-v2 baseline (NumPy 2.4's wheels need x86-64-v2: the floor of every CPU
# holocam runs on, and the sink's sse4 build).
OPENCV_AT_SSE4 = {"OPENCV_CPU_DISABLE": "AVX,AVX2,FMA3,FP16,AVX512F,AVX512-SKX,AVX512-CLX,AVX512-ICL,AVX512-COMMON",
                  "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
# A whole holocam process at AVX2 on an AVX-512 CPU, the instruction set most users' CPUs have:
# both native builds forced, stock torch capped, and OpenCV's and NumPy's run-time dispatch kept
# off their AVX-512 paths (libjpeg-turbo and ZeroMQ have none). The microarchitecture stays this
# CPU's: an AVX2-only CPU of an older generation can still be slower per instruction.
AVX2_ONLY_ENV = {"HOLOCAM_KERNELS_ISA": "avx2", "HOLOCAM_SINK_NATIVE_ISA": "avx2", **STOCK_AT_AVX2,
                 "OPENCV_CPU_DISABLE": "AVX512F,AVX512-SKX,AVX512-CLX,AVX512-ICL,AVX512-COMMON",
                 "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
LIBRARY_CAPS = tuple(k for k in AVX2_ONLY_ENV if not k.startswith("HOLOCAM_"))


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = platform.processor() or "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("unknown", platform.processor()):
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return name, flags


def kernels_setting() -> dict[str, str]:
    """The environment that chooses the segmenter's kernels (segmenter/kernels/__init__.py) and
    the sink's native passes (capture_sink/native/library.py)."""
    return {"HOLOCAM_KERNELS": os.environ.get("HOLOCAM_KERNELS", "auto"),
            "HOLOCAM_KERNELS_ISA": os.environ.get("HOLOCAM_KERNELS_ISA", ""),
            "HOLOCAM_SINK_NATIVE": os.environ.get("HOLOCAM_SINK_NATIVE", "auto"),
            "HOLOCAM_SINK_NATIVE_ISA": os.environ.get("HOLOCAM_SINK_NATIVE_ISA", "")}


def sink_native_build() -> str:
    """The native-pass build a sink started with this environment loads (before its timing)."""
    from capture_sink.native import library
    if library.mode() == "off":
        return "off"
    return os.environ.get(library.ISA_ENV, "").strip() or library.best_isa()


def loaded_kernel_build(timeout_s: float = 60.0) -> str:
    """The fused-kernel build a segmenter started with this environment loads ("stock" if none).

    Asked of a fresh Python, so this process does not load torch.
    """
    code = "from segmenter.kernels import load; print(load() or 'stock')"
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "PYTHONPATH": str(REPO)})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else f"unknown (exit {proc.returncode})"


def kernel_lines(log_text: str) -> list[str]:
    """The log lines about the segmenter's kernels and the sink's native passes (loaded build,
    timing and choice), message only."""
    out = []
    for line in log_text.splitlines():
        if re.search(r"kernel|fused|stock ops|native", line, re.IGNORECASE):
            out.append(line.split(": ", 1)[-1].strip()[:200])
    return out[:10]


def library_caps() -> dict[str, str]:
    """The instruction-set caps set on torch, OpenCV and NumPy in this environment (AVX2_ONLY_ENV)."""
    return {k: os.environ[k] for k in LIBRARY_CAPS if os.environ.get(k)}


def describe(kernel_build: str | None = None) -> dict:
    """CPU model, core count, avx512f/avx2 flags, the kernel environment, library instruction-set
    caps and (if given) build."""
    name, flags = _cpuinfo()
    info = {"cpu": name, "cores": os.cpu_count(), **{flag: flag in flags for flag in FLAGS},
            "kernels_env": kernels_setting(), "library_isa_caps": library_caps(),
            "sink_native_build": sink_native_build(),
            "python": platform.python_version(),
            "platform": platform.platform()}
    if kernel_build is not None:
        info["kernel_build"] = kernel_build
    return info
