"""Fused NHWC kernels as torch operators (torch.ops.holocam.depthwise / .pointwise).

The selfie models use them on their fast path when the library loads; otherwise they run on stock
torch ops (same masks, slower). `load()` finds the compiled library in the cache, builds it when a
compiler is at hand, and says once, in one line, why it cannot when it cannot.

Unset, a model that loads them also times them against stock ops on this CPU and keeps the faster
(calibrate.py). HOLOCAM_KERNELS=0 turns them off (stock torch ops only); =1 forces them, and makes
a failure to load an error.
HOLOCAM_KERNELS_ISA=avx2 or generic runs a lower build than the CPU allows (to test every build).
"""

from __future__ import annotations

import logging
import os
import threading

import torch

from .build import KernelBuildError, build, compiler, library_path

logger = logging.getLogger(__name__)

KERNELS_ENV = "HOLOCAM_KERNELS"
ISA_ENV = "HOLOCAM_KERNELS_ISA"   # force a lower build (tests); default: the best this CPU runs

# Activation codes shared with nhwc_kernels.h.
ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU6": 2, "HARD_SWISH": 3}

_lock = threading.Lock()
_state: dict[str, str | None] = {}


class KernelsUnavailable(RuntimeError):
    """HOLOCAM_KERNELS=1 but the library cannot be loaded; the message names the fix."""


def setting() -> str:
    """HOLOCAM_KERNELS as "off" (0), "require" (1) or "auto" (unset: time both on the model)."""
    return _setting()


def _setting() -> str:
    value = os.environ.get(KERNELS_ENV, "auto").strip().lower()
    if value in ("0", "off", "false", "no"):
        return "off"
    if value in ("1", "on", "true", "yes", "require"):
        return "require"
    if value in ("", "auto"):
        return "auto"
    raise KernelsUnavailable(f"{KERNELS_ENV}={value!r} is not one of auto, 0, 1: fix the environment variable")


def load(cache: str | os.PathLike | None = None) -> str | None:
    """Load the operator library once per process; returns its instruction set or None (off/unavailable)."""
    with _lock:
        if "isa" in _state:
            return _state["isa"]
        setting = _setting()
        isa: str | None = None
        if setting != "off":
            try:
                path = library_path(cache)
                if not path.is_file():
                    if compiler() is None and setting == "auto":
                        raise KernelBuildError("no C++ compiler to build them: run `python -m segmenter "
                                               "kernels` where g++ is installed, or ignore this")
                    logger.info("building the fused kernels once into %s (~20 s)", path.parent)
                    path = build(cache)
                torch.ops.load_library(str(path))
                isa = str(torch.ops.holocam.isa())
                wanted = os.environ.get(ISA_ENV)
                if wanted and wanted != isa:
                    raise KernelsUnavailable(f"{ISA_ENV}={wanted} but this CPU runs the {isa} build: "
                                             f"unset it or choose one of avx512, avx2, generic")
                logger.info("fused NHWC kernels loaded (%s)", isa)
            except (KernelBuildError, KernelsUnavailable) as exc:   # their messages name the fix
                isa = None
                _unavailable(setting, str(exc), exc)
            except (OSError, RuntimeError) as exc:                  # dlopen or operator registration
                isa = None
                _unavailable(setting, f"{str(exc).strip()}: rebuild it with `python -m segmenter kernels "
                                      f"--force`", exc)
        _state["isa"] = isa
        return isa


def _unavailable(setting: str, reason: str, cause: Exception) -> None:
    if setting == "require":
        raise KernelsUnavailable(f"{KERNELS_ENV}=1 but the fused kernels do not load: {reason}") from cause
    logger.warning("fused kernels unavailable, the model runs on stock torch ops (slower): %s", reason)


def available() -> bool:
    return load() is not None
