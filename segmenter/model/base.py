"""The interface every segmentation model implements, so the worker and the sink never care which.

A model announces its input geometry (`InputSpec`); the sink prepares frames with
`shared.resize.prepare_input(frame, spec)` and the model's `segment` answers a uint8 mask
(0..255 = person probability) of exactly the size it was given. Each model module registers
its loader in `MODELS` under the name users pick it by; a model that cannot be built raises
`ModelError`, one line that names the fix.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np

from shared.geometry import InputSpec, ResizeMode  # noqa: F401  (re-exported: models announce it)
from shared.registry import Registry


class ModelError(RuntimeError):
    """A model that cannot be built from what the user gave; one line that names the fix."""


class SegmentationModel(ABC):
    """One person-segmentation model on the CPU."""

    KEY: str  # the name users pick it by (--model KEY)

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec:
        """The input geometry the sink must send."""

    @abstractmethod
    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Person mask of a prepared frame.

        Args:
            rgb: uint8 array (h, w, 3), RGB, already prepared for `input_spec`.
        Returns:
            uint8 array (h, w): person probability x 255, same h and w as the input.
        """


class ModelLoader(Protocol):
    """What a model registers in MODELS: builds the model `name` on the CPU (see `create_model`)."""

    def __call__(self, name: str, *, weights: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, fast: bool = True) -> SegmentationModel: ...


MODELS: Registry[ModelLoader] = Registry("model", ModelError)   # --model name -> loader
