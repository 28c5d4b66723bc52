"""An alpha still at the refiner's working size, to be scaled up to the frame by a whole factor.

The refiner's last step scales its work-size alpha (640x360) up to the frame (1280x720 at 2x): a
0.9 MB write that the composite then reads back. The sink's native passes can scale each alpha
row themselves as they blend it, in cache (capture_sink/native/frame_ops.c), so the refiner hands
them a `ScaledAlpha` instead (capture_sink/app.py asks for it on the virtual camera's path);
anything else that needs the frame-sized alpha calls `frame_alpha`, which makes it once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


class ScaledAlpha:
    """uint8 `small` (h, w) and the whole factor to the frame; `shape` is the frame's (k h, k w).

    Args:
        small: the alpha at the working size (the refiner's buffer: valid until its next frame).
        factor: 2, 3 or 4.
        scale_up: makes the frame-sized alpha from `small` (the refiner's own upsample).
    """

    __slots__ = ("small", "factor", "shape", "_scale_up", "_full")

    def __init__(self, small: np.ndarray, factor: int, scale_up: Callable[[np.ndarray], np.ndarray]) -> None:
        self.small, self.factor = small, factor
        self.shape = (small.shape[0] * factor, small.shape[1] * factor)
        self._scale_up = scale_up
        self._full: np.ndarray | None = None

    def full(self) -> np.ndarray:
        """The frame-sized alpha (made on the first call)."""
        if self._full is None:
            self._full = self._scale_up(self.small)
        return self._full


def frame_alpha(alpha: np.ndarray | ScaledAlpha) -> np.ndarray:
    """The frame-sized alpha, whichever form `alpha` is in."""
    return alpha.full() if isinstance(alpha, ScaledAlpha) else alpha


def pass_alpha(alpha: np.ndarray | ScaledAlpha) -> np.ndarray:
    """What a native pass takes: the frame-sized alpha, or the small one it scales itself."""
    return alpha.small if isinstance(alpha, ScaledAlpha) else alpha
