"""What both native builds share (the segmenter's kernels, the sink's frame passes).

Each compiles its sources once per x86-64 level (so one library runs on any x86-64 CPU and picks
its build at run time), finds a compiler the same way, reports a failed compile as one line that
names the fix, and installs the library into the cache atomically, so a half-written library is
never loaded.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

X86_VARIANTS = [("avx512", "x86-64-v4"), ("avx2", "x86-64-v3"), ("generic", "x86-64")]
# The sink's frame passes add x86-64-v2 (SSSE3 to SSE4.2, no AVX): their byte shuffles have SSSE3
# paths, which CPUs without AVX2 (Celeron and Pentium Silver laptops, Sandy and Ivy Bridge, AMD
# before Excavator) would otherwise run as SSE2's scalar loops, several times slower than OpenCV.
X86_SINK_VARIANTS = [("avx512", "x86-64-v4"), ("avx2", "x86-64-v3"), ("sse4", "x86-64-v2"), ("generic", "x86-64")]
# What a CPU needs to run each build, as /proc/cpuinfo names the flags (the x86-64-v4 / -v3 / -v2
# levels; "pni" is SSE3).
LEVEL_FLAGS = {
    "avx512": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "bmi2", "fma"},
    "avx2": {"avx2", "bmi1", "bmi2", "fma", "f16c", "movbe"},
    "sse4": {"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm"},
    "generic": set(),
}


def variants(levels: list[tuple[str, str]] | None = None) -> list[tuple[str, str | None]]:
    """(build name, -march) of every build a library holds on this machine type: `levels` on
    x86-64 (X86_VARIANTS unless given), one generic build elsewhere."""
    if platform.machine() in ("x86_64", "AMD64"):
        return list(levels if levels is not None else X86_VARIANTS)
    return [("generic", None)]


def cpu_flags() -> set[str]:
    """This CPU's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_runs(build: str, flags: set[str] | None = None) -> bool:
    """Whether this CPU (or one with `flags`) can run `build`."""
    if build != "generic" and platform.machine() not in ("x86_64", "AMD64"):
        return False
    return LEVEL_FLAGS[build] <= (cpu_flags() if flags is None else flags)


def best_build(flags: set[str] | None = None, levels: list[tuple[str, str]] | None = None) -> str:
    """The widest build of `levels` (X86_VARIANTS unless given) this CPU runs."""
    return next(build for build, _ in variants(levels) if cpu_runs(build, flags))


def find_compiler(env_var: str, names: tuple[str, ...]) -> str | None:
    """$env_var, else the first of `names` on PATH; None when there is none."""
    for name in (os.environ.get(env_var), *names):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def require_compiler(found: str | None, missing: Exception) -> str:
    """The compiler found, or raise `missing` (the one-line error naming the package to install)."""
    if found is None:
        raise missing
    return found


def run_compiler(cmd: list[str], error: type[Exception], what: str, fix: str) -> None:
    """Run one compiler command; on failure raise `error` with its first error line and `fix`."""
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        first_error = next((line for line in detail if "error" in line), detail[-1] if detail else "")
        reason = first_error.strip() or f"{Path(cmd[0]).name} exited with status {result.returncode}"
        raise error(f"compiling {what} failed ({reason}): {fix}")


def install(built: Path, target: Path) -> None:
    """Copy the built library to `target` atomically (a reader sees the old file or the new one)."""
    partial = target.with_suffix(".tmp")
    shutil.copy2(built, partial)
    os.replace(partial, target)


def cached_build(target: Path, force: bool, compile_into: Callable[[Path], Path]) -> Path:
    """`target` if it is built already (and not `force`), else `compile_into(scratch folder)`'s
    library installed there; returns `target`."""
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="holocam-build-") as tmp:
        install(compile_into(Path(tmp)), target)
    return target


def per_level_objects(compiler: str, flags: list[str], source: Path, tmp: Path,
                      levels: list[tuple[str, str]] | None = None) -> tuple[list[list[str]], list[str]]:
    """The compile commands of `source` once per level of `levels` (X86_VARIANTS unless given; with
    -DHOLOCAM_ISA=<build>) and their objects."""
    jobs, objects = [], []
    for isa, march in variants(levels):
        obj = str(tmp / f"{source.stem}_{isa}.o")
        arch = [f"-march={march}"] if march else []
        jobs.append([compiler, *flags, *arch, f"-DHOLOCAM_ISA={isa}", "-c", str(source), "-o", obj])
        objects.append(obj)
    return jobs, objects
