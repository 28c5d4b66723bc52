"""`selfie-auto`: MediaPipe's landscape model for wide frames, its general model for the rest.

MediaPipe ships two selfie models: the general one (256x256) and the landscape one (256x144,
the model of Google Meet's background effects). Stretching a 16:9 webcam frame onto the square
grid squeezes people sideways and wastes rows; the landscape grid keeps its shape and has 44%
fewer pixels, so a mask costs about half. Measured on 16:9 frames with a known matte (a person
pasted onto other photos: bench/bench_matte.py), the landscape model's masks are as good or
better. So a replica serving `selfie-auto` announces an "aspect" spec (shared/geometry.py): the
sink stretches frames of 3:2 or wider to 256x144 and the rest (4:3, portrait) to 256x256, and
each frame goes to the model of its grid.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .base import MODELS, InputSpec, ModelError, SegmentationModel

KEY = "selfie-auto"
SQUARE, WIDE = "selfie", "selfie-landscape"


class AspectModels(SegmentationModel):
    """Two models behind one "aspect" spec: each frame goes to the model of its grid.

    Args:
        square: the model of the width x height grid (the general model).
        wide: the model of the 16:9 grid (`InputSpec.wide_size`; the landscape model).
    """

    KEY = KEY

    def __init__(self, square: SegmentationModel, wide: SegmentationModel) -> None:
        spec = InputSpec(square.input_spec.width, square.input_spec.height, "aspect")
        if (wide.input_spec.width, wide.input_spec.height) != spec.wide_size:
            raise ModelError(f"{KEY}: the wide model takes {wide.input_spec.width}x{wide.input_spec.height}, "
                             f"not {spec.wide_size[0]}x{spec.wide_size[1]}")
        self._spec = spec
        self.models = {(spec.height, spec.width): square, (spec.wide_size[1], spec.wide_size[0]): wide}
        self.square, self.wide = square, wide

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def model_for(self, rgb: np.ndarray) -> SegmentationModel:
        model = self.models.get(tuple(getattr(rgb, "shape", ())[:2]))
        if model is None:
            sizes = " or ".join(f"{w}x{h}" for h, w in self.models)
            raise ModelError(f"{KEY} takes RGB frames of {sizes}, got {getattr(rgb, 'shape', None)}: "
                             f"prepare frames with shared.resize.prepare_input")
        return model

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return self.model_for(rgb).segment(rgb)


class AspectBatchModels(AspectModels):
    """`AspectModels` over models that run batches (the device models): one pass per grid."""

    def segment_batch(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(frames)
        groups: dict[int, list[int]] = {}
        for i, rgb in enumerate(frames):
            groups.setdefault(id(self.model_for(rgb)), []).append(i)
        for indices in groups.values():
            model = self.model_for(frames[indices[0]])
            for i, mask in zip(indices, model.segment_batch([frames[i] for i in indices])):
                out[i] = mask
        return out  # type: ignore[return-value]

    @property
    def device_name(self) -> str:
        return self.square.device_name


def pair(square: SegmentationModel, wide: SegmentationModel) -> AspectModels:
    """The two models behind one spec; batched when both run batches."""
    both_batch = hasattr(square, "segment_batch") and hasattr(wide, "segment_batch")
    return (AspectBatchModels if both_batch else AspectModels)(square, wide)


def check_no_weights(weights: str | os.PathLike | None) -> None:
    if weights is not None:
        raise ModelError(f"--weights names one file but {KEY} runs two models from the weights cache: "
                         f"use --model {SQUARE} or --model {WIDE} with --weights")


def load_auto(name: str, *, weights: str | os.PathLike | None = None,
              cache_dir: str | os.PathLike | None = None, fast: bool = True) -> AspectModels:
    """Both selfie models from the weights cache (each calibrates its own kernels)."""
    from .selfie import load_selfie

    check_no_weights(weights)
    return pair(load_selfie(SQUARE, cache_dir=cache_dir, fast=fast),
                load_selfie(WIDE, cache_dir=cache_dir, fast=fast))


MODELS.add(KEY, load_auto)
