"""The model input geometry a segmenter announces and a sink prepares frames for: the one size rule.

`shared.resize.prepare_input` makes frames of `InputSpec.input_size`; a receiver (the sink's
dispatcher, a segmenter) checks a prepared frame with `InputSpec.accepts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "stretch": the frame is resized to exactly width x height, aspect ignored (MediaPipe's rule).
# "fit": the longer side is scaled to max(width, height), aspect kept; the model pads internally.
# "aspect": a stretch onto one of two grids by the frame's shape: width x height for frames
#   narrower than 3:2, width x width*9/16 for 3:2 and wider (a replica serving MediaPipe's
#   general model for the first and its landscape model for the second: selfie-auto).
ResizeMode = Literal["stretch", "fit", "aspect"]
RESIZE_MODES = ("stretch", "fit", "aspect")


def fit_size(width: int, height: int, longer_side: int) -> tuple[int, int]:
    """(w, h) with the longer side scaled to `longer_side`, aspect kept, truncated like the seed."""
    if width >= height:
        return longer_side, max(1, int(height * longer_side / width))
    return max(1, int(width * longer_side / height)), longer_side


def is_wide(width: int, height: int) -> bool:
    """Frames of 3:2 or wider (16:10, 16:9, 21:9) go to the 16:9 grid of an "aspect" spec."""
    return 2 * width >= 3 * height


@dataclass(frozen=True)
class InputSpec:
    width: int
    height: int
    resize: ResizeMode = "stretch"

    @property
    def wide_size(self) -> tuple[int, int]:
        """(w, h) of the 16:9 grid an "aspect" spec stretches wide frames onto (256 -> 256x144)."""
        return self.width, max(1, round(self.width * 9 / 16))

    def describe(self) -> str:
        """The grid(s) in words, for logs and errors: "256x256", "256x256 or 256x144 (by aspect)"."""
        if self.resize == "aspect":
            return f"{self.width}x{self.height} or {self.wide_size[0]}x{self.wide_size[1]} (by aspect)"
        return f"{self.width}x{self.height}" + (" (fit)" if self.resize == "fit" else "")

    def input_size(self, frame_width: int, frame_height: int) -> tuple[int, int]:
        """(w, h) of the model input made from a frame of this size."""
        if self.resize == "stretch":
            return self.width, self.height
        if self.resize == "aspect":
            return self.wide_size if is_wide(frame_width, frame_height) else (self.width, self.height)
        return fit_size(frame_width, frame_height, max(self.width, self.height))

    def accepts(self, width: int, height: int) -> bool:
        """Whether a prepared frame of width x height suits this input.

        The receiver does not know the camera's aspect, so a "fit" frame is checked by its
        longer side only.
        """
        if self.resize == "stretch":
            return (width, height) == (self.width, self.height)
        if self.resize == "aspect":
            return (width, height) in ((self.width, self.height), self.wide_size)
        return max(width, height) == max(self.width, self.height)
