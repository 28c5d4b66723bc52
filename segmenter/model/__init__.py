"""Segmentation models by name: `create_model("selfie")`.

Each model lives in its own module and is imported only when chosen, so a segmenter that runs
the selfie models never imports the ICNet code and vice versa.
"""

from __future__ import annotations

import os

from .base import InputSpec, ModelError, SegmentationModel

MODEL_NAMES = ("selfie", "selfie-landscape", "icnet-resnet18")
DEFAULT_MODEL = "selfie"


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
    if name in ("selfie", "selfie-landscape"):
        from .selfie import load_selfie
        return load_selfie(name, weights=weights, cache_dir=cache_dir, fast=fast)
    if name == "icnet-resnet18":
        from .icnet import load_icnet
        return load_icnet(weights=weights, fast=fast)
    raise ModelError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")


__all__ = ["MODEL_NAMES", "DEFAULT_MODEL", "InputSpec", "ModelError", "SegmentationModel", "create_model", "set_threads"]
