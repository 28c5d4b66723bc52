"""Segmentation models by name: `create_model("selfie")`.

Each model registers its loader in `MODELS` (model/base.py) in its own file. The model modules
are imported on the first `create_model` or `MODEL_NAMES`, not with this package: the sink's
doctor reads DEFAULT_MODEL without paying for torch. Adding a model: a module that registers
its loader, named in `_MODEL_MODULES`.
"""

from __future__ import annotations

import importlib
import os

from .base import MODELS, InputSpec, ModelError, SegmentationModel

# selfie-auto: the landscape model for 16:9 frames, the general one for the rest (by_aspect.py)
DEFAULT_MODEL = "selfie-auto"
_MODEL_MODULES = ("selfie", "by_aspect", "icnet")   # in the order `--model` lists their models


def _models() -> dict:
    for module in _MODEL_MODULES:
        importlib.import_module(f"{__name__}.{module}")   # registers its models (once: imports are cached)
    return MODELS


def __getattr__(name: str):
    if name == "MODEL_NAMES":   # the registered names, for --model choices
        return tuple(_models())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_threads(threads: int) -> None:
    """torch's intra-op threads for every model in this process (--threads)."""
    if threads < 1:
        raise ModelError(f"--threads must be at least 1, got {threads}")
    import torch
    torch.set_num_threads(threads)


def create_model(name: str, *, weights: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                 fast: bool = True) -> SegmentationModel:
    """Build the named model on the CPU.

    Args:
        name: one of MODEL_NAMES.
        weights: a weights file; defaults to the cached MediaPipe file for the selfie models
            (required for icnet-resnet18, whose weights are the user's own checkpoint).
        cache_dir: the weights cache (see segmenter.weights.cache_dir).
        threads: torch intra-op threads; None keeps torch's default.
        fast: the traced/frozen fast path; False gives the plain eager module (benchmarks).
    """
    if threads is not None:
        set_threads(threads)
    load = _models().get_or_raise(name)
    return load(name, weights=weights, cache_dir=cache_dir, fast=fast)


__all__ = ["MODEL_NAMES", "DEFAULT_MODEL", "InputSpec", "ModelError", "SegmentationModel", "create_model",
           "set_threads"]
