"""An output that only counts frames: for benchmarks and for running without a device."""

from __future__ import annotations

import logging

import numpy as np

from capture_sink.outputs.base import Output, register_output

logger = logging.getLogger(__name__)


@register_output
class NullOutput(Output):
    """Checks and counts frames, writes nothing (``frames_written`` is the count)."""

    KEY = "null"
    takes_yuyv = True      # writes nothing, so any form will do

    def write(self, frame_bgr: np.ndarray) -> None:
        self._check_frame(frame_bgr)
        self.frames_written += 1

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        self._check_frame(frame_yuyv, channels=2)
        self.frames_written += 1

    def _close(self) -> None:
        logger.debug("D: null output closed after %d frames", self.frames_written)
