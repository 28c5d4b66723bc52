"""The model input geometry a segmenter announces and a sink prepares frames for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "stretch": the frame is resized to exactly width x height, aspect ignored (MediaPipe's rule).
# "fit": the longer side is scaled to max(width, height), aspect kept; the model pads internally.
ResizeMode = Literal["stretch", "fit"]
RESIZE_MODES = ("stretch", "fit")


@dataclass(frozen=True)
class InputSpec:
    width: int
    height: int
    resize: ResizeMode = "stretch"
