"""Alpha compositing of the foreground over the background, in uint8 with preallocated buffers.

out = fg * a/255 + bg * (255 - a)/255, per pixel and channel, with `a` the uint8 alpha from
`capture_sink.refine`. Each product is one saturating `cv2.multiply` with scale 1/255 (rounded),
so the result is within +-1 of the exact float value, without the seed's float64 round trip
(three full-frame float64 arrays a frame). Where the sink's native pass is faster on this CPU
(capture_sink/native/choice.py), one fused pass computes the same blend, exactly rounded.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from capture_sink.native import choice, library

logger = logging.getLogger(__name__)

_SCALE = 1.0 / 255.0


class Compositor:
    """Blends a foreground over a background through an alpha mask.

    Scratch buffers are sized on the first call and reused; the result is a fresh array each call,
    handed out read-only, so the writers keep it without copying (capture_sink/steady_writer.py).
    """

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def _allocate(self, shape: tuple[int, ...]) -> None:
        self._alpha3 = np.empty(shape, np.uint8)
        self._inverse3 = np.empty(shape, np.uint8)
        self._fg_part = np.empty(shape, np.uint8)
        self._bg_part = np.empty(shape, np.uint8)
        self._shape = shape

    def composite(self, fg_bgr: np.ndarray, bg_bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Foreground over background.

        Args:
            fg_bgr: uint8 (H, W, 3), the foreground (the frame after the effect).
            bg_bgr: uint8 (H, W, 3), the background of the same size.
            alpha: uint8 (H, W), 255 = foreground, 0 = background.
        Returns:
            uint8 (H, W, 3), a new read-only array; or `fg_bgr` itself when the foreground and
            background are the same array (nothing to blend).
        """
        if fg_bgr.shape != bg_bgr.shape or alpha.shape != fg_bgr.shape[:2]:
            raise ValueError(f"composite needs equal sizes: fg {fg_bgr.shape}, bg {bg_bgr.shape}, "
                             f"alpha {alpha.shape}; resize the background/alpha to the frame")
        if fg_bgr is bg_bgr:
            return fg_bgr
        if self._shape != fg_bgr.shape:
            self._allocate(fg_bgr.shape)
        ops = library.load()
        if ops is not None and library.accepts(fg_bgr, bg_bgr, alpha):
            def native() -> np.ndarray:
                out = np.empty(fg_bgr.shape, np.uint8)
                ops.composite(fg_bgr, bg_bgr, alpha, out)
                return _handed_out(out)
            if choice.use_native("composite", fg_bgr.shape[:2], ops.isa,
                                 lambda: self._composite_opencv(fg_bgr, bg_bgr, alpha), native):
                return native()
        return self._composite_opencv(fg_bgr, bg_bgr, alpha)

    def _composite_opencv_fresh(self, fg_bgr: np.ndarray, bg_bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """The OpenCV path alone, allocating as needed (tests and benchmarks compare against it)."""
        if self._shape != fg_bgr.shape:
            self._allocate(fg_bgr.shape)
        return self._composite_opencv(fg_bgr, bg_bgr, alpha)

    def _composite_opencv(self, fg_bgr: np.ndarray, bg_bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR, dst=self._alpha3)
        cv2.bitwise_not(self._alpha3, dst=self._inverse3)  # 255 - a
        cv2.multiply(fg_bgr, self._alpha3, dst=self._fg_part, scale=_SCALE)
        cv2.multiply(bg_bgr, self._inverse3, dst=self._bg_part, scale=_SCALE)
        return _handed_out(cv2.add(self._fg_part, self._bg_part, dst=np.empty(fg_bgr.shape, np.uint8)))


def _handed_out(out: np.ndarray) -> np.ndarray:
    """`out`, read-only from now on: the writers keep it by reference."""
    out.flags.writeable = False
    return out
