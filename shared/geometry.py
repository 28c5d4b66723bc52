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


def fits(width: int, height: int, spec: InputSpec) -> bool:
    """Whether a width x height frame is what a replica announcing `spec` takes.

    "stretch": exactly width x height; "fit": the longer side is max(width, height), aspect kept.
    The sink checks it before sending (capture_sink.dispatch) and the replica on arrival.
    """
    if spec.resize == "stretch":
        return (width, height) == (spec.width, spec.height)
    return max(width, height) == max(spec.width, spec.height)
