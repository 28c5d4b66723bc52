"""Compile the sink's native frame passes (frame_ops.c) into libholocam_frame.so.

Like the segmenter's kernels, the source is compiled once per x86-64 level (-march=x86-64-v4,
-v3 and the baseline; elsewhere once for the machine's baseline), each build's functions carry
the level in their names, and the sink picks the build for its CPU at run time
(capture_sink/native/library.py). So one library, built in an image or on another machine, runs
on any x86-64 CPU. The library lands in the holocam cache under a key of the source, the flags
and the machine type, written atomically: a stale or half-written library is never loaded.

    python -m capture_sink native        # build once (make kernels and the sink image do this)
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from shared.cache import cache_dir

SOURCE = Path(__file__).resolve().parent / "frame_ops.c"
LIBRARY_NAME = "libholocam_frame.so"
COMPILER_ENV = "CC"

_COMMON_FLAGS = ["-O3", "-std=c11", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"]
X86_VARIANTS = [("avx512", "x86-64-v4"), ("avx2", "x86-64-v3"), ("generic", "x86-64")]


class NativeBuildError(RuntimeError):
    """The native frame passes could not be compiled; the message names the fix."""


def variants() -> list[tuple[str, str | None]]:
    """(isa name, -march) of every build the library holds on this machine type."""
    if platform.machine() in ("x86_64", "AMD64"):
        return list(X86_VARIANTS)
    return [("generic", None)]


def compiler() -> str | None:
    """$CC, else gcc, else cc; None when there is none."""
    for name in (os.environ.get(COMPILER_ENV), "gcc", "cc"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_key() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(repr((_COMMON_FLAGS, variants(), platform.machine())).encode())
    return digest.hexdigest()[:16]


def library_path(cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / "native" / build_key() / LIBRARY_NAME


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = next((line for line in lines if "error" in line), lines[-1] if lines else "").strip()
        raise NativeBuildError(f"compiling the sink's native frame passes failed ({reason or result.returncode}): "
                               f"install a C compiler (apt install gcc) or run with HOLOCAM_SINK_NATIVE=0")


def build(cache: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Compile the library into the cache (unless it is there already); returns its path."""
    target = library_path(cache)
    if target.is_file() and not force:
        return target
    cc = compiler()
    if cc is None:
        raise NativeBuildError("no C compiler found to build the sink's native frame passes: install gcc "
                               "(apt install gcc) or run with HOLOCAM_SINK_NATIVE=0")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="holocam-native-") as tmp:
        objects = []
        for isa, march in variants():
            obj = str(Path(tmp) / f"frame_ops_{isa}.o")
            arch = [f"-march={march}"] if march else []
            _run([cc, *_COMMON_FLAGS, *arch, f"-DHOLOCAM_ISA={isa}", "-c", str(SOURCE), "-o", obj])
            objects.append(obj)
        partial = Path(tmp) / LIBRARY_NAME
        _run([cc, "-shared", *objects, "-o", str(partial)])
        shutil.copy2(partial, target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)
    for other in target.parent.parent.iterdir():   # builds of older sources
        if other != target.parent and (other / LIBRARY_NAME).is_file():
            shutil.rmtree(other, ignore_errors=True)
    return target
