"""The model input geometry a segmenter announces and a sink prepares frames for: the one size rule.

`shared.resize.prepare_input` makes frames of `InputSpec.input_size`; a receiver (the sink's
dispatcher, a segmenter) checks a prepared frame with `InputSpec.accepts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "stretch": the frame is resized to exactly width x height, aspect ignored (MediaPipe's rule).
# "fit": the longer side is scaled to max(width, height), aspect kept; the model pads internally.
ResizeMode = Literal["stretch", "fit"]
RESIZE_MODES = ("stretch", "fit")


def fit_size(width: int, height: int, longer_side: int) -> tuple[int, int]:
    """(w, h) with the longer side scaled to `longer_side`, aspect kept, truncated like the seed."""
    if width >= height:
        return longer_side, max(1, int(height * longer_side / width))
    return max(1, int(width * longer_side / height)), longer_side


@dataclass(frozen=True)
class InputSpec:
    width: int
    height: int
    resize: ResizeMode = "stretch"

    def input_size(self, frame_width: int, frame_height: int) -> tuple[int, int]:
        """(w, h) of the model input made from a frame of this size."""
        if self.resize == "stretch":
            return self.width, self.height
        return fit_size(frame_width, frame_height, max(self.width, self.height))

    def accepts(self, width: int, height: int) -> bool:
        """Whether a prepared frame of width x height suits this input.

        The receiver does not know the camera's aspect, so a "fit" frame is checked by its
        longer side only.
        """
        if self.resize == "stretch":
            return (width, height) == (self.width, self.height)
        return max(width, height) == max(self.width, self.height)
