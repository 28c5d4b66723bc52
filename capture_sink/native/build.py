"""Compile the sink's native frame passes (frame_ops.c, refine_ops.c) into libholocam_frame.so.

Like the segmenter's kernels, each source is compiled once per x86-64 level (-march=x86-64-v4,
-v3, -v2 and the baseline; elsewhere once for the machine's baseline), each build's functions carry
the level in their names, and the sink picks the build for its CPU at run time
(capture_sink/native/library.py). So one library, built in an image or on another machine, runs
on any x86-64 CPU. The library lands in the holocam cache under a key of the sources, the flags
and the machine type, written atomically: a stale or half-written library is never loaded.

    python -m capture_sink native        # build once (make kernels and the sink image do this)
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
from pathlib import Path

from shared.cache import cache_dir
from shared.native_build import (X86_SINK_VARIANTS, cached_build, find_compiler, per_level_objects,
                                 require_compiler, run_compiler, variants)

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "frame_ops.c", HERE / "refine_ops.c")     # the compositing passes, the refiner's
HEADER = HERE / "frame_passes.h"
LIBRARY_NAME = "libholocam_frame.so"
COMPILER_ENV = "CC"
LEVELS = X86_SINK_VARIANTS    # the x86-64 levels built, widest first (on other machines one build)

_COMMON_FLAGS = ["-O3", "-std=c11", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"]


class NativeBuildError(RuntimeError):
    """The native frame passes could not be compiled; the message names the fix."""


def compiler() -> str | None:
    """$CC, else gcc, else cc; None when there is none."""
    return find_compiler(COMPILER_ENV, ("gcc", "cc"))


def build_key() -> str:
    digest = hashlib.sha256()
    for path in (*SOURCES, HEADER):
        digest.update(path.read_bytes())
    digest.update(repr((_COMMON_FLAGS, variants(LEVELS), platform.machine())).encode())
    return digest.hexdigest()[:16]


def library_path(cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / "native" / build_key() / LIBRARY_NAME


def _run(cmd: list[str]) -> None:
    run_compiler(cmd, NativeBuildError, "the sink's native frame passes",
                 "install a C compiler (apt install gcc) or run with HOLOCAM_SINK_NATIVE=0")


def build(cache: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Compile the library into the cache (unless it is there already); returns its path."""
    target = cached_build(library_path(cache), force, _compile)
    for other in target.parent.parent.iterdir():   # builds of older sources
        if other != target.parent and (other / LIBRARY_NAME).is_file():
            shutil.rmtree(other, ignore_errors=True)
    return target


def _compile(tmp: Path) -> Path:
    cc = require_compiler(compiler(), NativeBuildError(
        "no C compiler found to build the sink's native frame passes: install gcc (apt install gcc) "
        "or run with HOLOCAM_SINK_NATIVE=0"))
    jobs, objects = [], []
    for source in SOURCES:
        source_jobs, source_objects = per_level_objects(cc, _COMMON_FLAGS, source, tmp, LEVELS)
        jobs += source_jobs
        objects += source_objects
    for job in jobs:
        _run(job)
    library = tmp / LIBRARY_NAME
    _run([cc, "-shared", *objects, "-o", str(library)])
    return library
