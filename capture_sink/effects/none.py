"""The identity effect: the person as the camera sees them."""

from __future__ import annotations

import numpy as np

from capture_sink.effects import Effect


class NoEffect(Effect):
    """Returns the frame itself: no copy, no cost."""

    KEY = "none"

    def apply(self, frame_bgr: np.ndarray) -> np.ndarray:
        return frame_bgr
