"""Compile the fused NHWC kernels into a torch operator library (libholocam_ops.so).

The kernel source is compiled three times on x86-64 (-march=x86-64-v4, -v3 and the baseline),
so one library runs on any x86-64 CPU and uses AVX-512 or AVX2 where present; elsewhere once,
for the build machine's baseline. Only torch_ops.cpp sees torch's headers. The library lands in
the holocam cache under a key of the sources, compiler flags and torch version, written
atomically, so a stale or half-written library is never loaded.

    python -m segmenter kernels          # build once (make venv and the images do this)
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from shared.native_build import (cached_build, find_compiler, per_level_objects, require_compiler, run_compiler,
                                 variants)

HERE = Path(__file__).resolve().parent
KERNEL_SOURCE = HERE / "nhwc_kernels.cpp"
OPS_SOURCE = HERE / "torch_ops.cpp"
HEADER = HERE / "nhwc_kernels.h"
LIBRARY_NAME = "libholocam_ops.so"
COMPILER_ENV = "CXX"

# C++20: what torch 2.13's headers are written for (torch.utils.cpp_extension uses it too); g++ >= 10.
_COMMON_FLAGS = ["-O3", "-std=c++20", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
# (namespace, -march) per kernel build; x86-64 builds all three and picks at run time.


class KernelBuildError(RuntimeError):
    """The kernels could not be compiled; the message names the fix."""


def _torch_flags() -> tuple[list[str], list[str]]:
    root = Path(torch.__file__).resolve().parent
    abi = int(torch.compiled_with_cxx11_abi())
    includes = [f"-I{root / 'include'}", f"-I{root / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
                f"-D_GLIBCXX_USE_CXX11_ABI={abi}"]
    libs = [f"-L{root / 'lib'}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{root / 'lib'}"]
    return includes, libs


def compiler() -> str | None:
    """The C++ compiler to use ($CXX, else g++, else c++), or None when there is none."""
    return find_compiler(COMPILER_ENV, ("g++", "c++"))


def build_key() -> str:
    """Changes whenever the sources, the flags, the torch build or the machine type change."""
    digest = hashlib.sha256()
    for path in (KERNEL_SOURCE, OPS_SOURCE, HEADER):
        digest.update(path.read_bytes())
    digest.update(repr((_COMMON_FLAGS, variants(), torch.__version__, torch.compiled_with_cxx11_abi(),
                        platform.machine(), sys.version_info[:2])).encode())
    return digest.hexdigest()[:16]


def library_path(cache: str | os.PathLike | None = None) -> Path:
    from shared.cache import cache_dir
    return cache_dir(cache) / "kernels" / f"torch-{torch.__version__}-{build_key()}" / LIBRARY_NAME


def _run(cmd: list[str]) -> None:
    run_compiler(cmd, KernelBuildError, "the fused kernels",
                 "install a C++20 compiler (apt install g++) or run with HOLOCAM_KERNELS=0")


def build(cache: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Compile the library into the cache (unless it is there already) and return its path."""
    target = cached_build(library_path(cache), force, _compile)
    _remove_stale(target.parent)
    return target


def _compile(tmp: Path) -> Path:
    cxx = require_compiler(compiler(), KernelBuildError(
        "no C++ compiler found to build the fused kernels: install g++ (apt install g++) "
        "or run with HOLOCAM_KERNELS=0"))
    includes, libs = _torch_flags()
    jobs, objects = per_level_objects(cxx, _COMMON_FLAGS, KERNEL_SOURCE, tmp)
    ops_obj = tmp / "torch_ops.o"
    x86 = ["-DHOLOCAM_X86_VARIANTS"] if len(variants()) > 1 else []
    jobs.append([cxx, *_COMMON_FLAGS, *includes, *x86, "-Wno-deprecated-declarations",
                 "-c", str(OPS_SOURCE), "-o", str(ops_obj)])
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        list(pool.map(_run, jobs))   # raises the first failure
    library = tmp / LIBRARY_NAME
    _run([cxx, "-shared", *objects, str(ops_obj), *libs, "-o", str(library)])
    return library


def _remove_stale(current: Path) -> None:
    """Drop libraries built from older sources or for another torch; a process may still have
    one mapped, which is fine on Linux (the file lives on until it is unmapped)."""
    for other in current.parent.glob("torch-*"):
        if other != current and (other / LIBRARY_NAME).is_file():
            shutil.rmtree(other, ignore_errors=True)
