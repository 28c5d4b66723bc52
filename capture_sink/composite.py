"""Alpha compositing of the foreground over the background, in uint8 with preallocated buffers.

out = fg * a/255 + bg * (255 - a)/255, per pixel and channel, with `a` the uint8 alpha from
`capture_sink.refine`. Each product is one saturating `cv2.multiply` with scale 1/255 (rounded),
so the result is within +-1 of the exact float value, without the seed's float64 round trip
(three full-frame float64 arrays a frame). Where the sink's native pass is faster on this CPU
(capture_sink/native/choice.py), one fused pass computes the same blend, exactly rounded, and
while every output takes YUYV (the virtual camera) it writes the frame as YUYV itself.
"""

from __future__ import annotations

import logging
from typing import Callable

import cv2
import numpy as np

from capture_sink.frame_pool import FramePool
from capture_sink.native import choice, library
from capture_sink.scaled_alpha import ScaledAlpha, frame_alpha, pass_alpha
from capture_sink.outputs.yuv import BgrToYuyv

logger = logging.getLogger(__name__)

_SCALE = 1.0 / 255.0


class Compositor:
    """Blends a foreground over a background through an alpha mask.

    Scratch buffers are sized on the first call and reused; the result is a fresh array each call,
    handed out read-only, so the writers keep it without copying (capture_sink/steady_writer.py).
    """

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None
        self._to_yuyv: BgrToYuyv | None = None      # the writer's conversion, for `yuyv_pays`
        self._still: tuple[np.ndarray, np.ndarray] | None = None   # (a still background, its YUYV)
        self.frames = FramePool()   # YUYV frames over the still background, reused when free

    def _allocate(self, shape: tuple[int, ...]) -> None:
        self._alpha3 = np.empty(shape, np.uint8)
        self._inverse3 = np.empty(shape, np.uint8)
        self._fg_part = np.empty(shape, np.uint8)
        self._bg_part = np.empty(shape, np.uint8)
        self._shape = shape

    def background_yuyv(self, background: np.ndarray) -> np.ndarray | None:
        """A still background (the same read-only array every frame) as YUYV, made by the native
        pass once and kept while the background stays: the fused passes copy it where the mask is
        0 instead of converting those pixels every frame. None without the native passes or for an
        odd width."""
        ops = library.load()
        if ops is None or background.flags.writeable or not library.accepts(background, None, None) \
                or background.shape[1] % 2:
            return None
        if self._still is None or self._still[0] is not background:
            # Converted on the first frame only; keeping `background` referenced keeps its id unique.
            yuyv = np.empty((*background.shape[:2], 2), np.uint8)
            ops.bgr_to_yuyv(background, yuyv)
            yuyv.flags.writeable = False
            self._still = (background, yuyv)
        return self._still[1]

    def composite(self, fg_bgr: np.ndarray, bg_bgr: np.ndarray, alpha: np.ndarray | ScaledAlpha,
                  yuyv: bool = False, background_yuyv: np.ndarray | None = None) -> np.ndarray:
        """Foreground over background.

        Args:
            fg_bgr: uint8 (H, W, 3), the foreground (the frame after the effect).
            bg_bgr: uint8 (H, W, 3), the background of the same size.
            alpha: uint8 (H, W), 255 = foreground, 0 = background; or a ScaledAlpha of that size.
            yuyv: the outputs take YUYV: make the frame as YUYV where that is faster (`yuyv_pays`).
            background_yuyv: `bg_bgr` as YUYV (`background_yuyv`), for the YUYV pass; or None.
        Returns:
            uint8 (H, W, 3) BGR, or (H, W, 2) YUYV when asked and faster, a new read-only array;
            or `fg_bgr` itself when the foreground and background are the same array.
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
            small = pass_alpha(alpha)      # a ScaledAlpha: the pass scales each row up itself

            def native(channels: int = 3) -> np.ndarray:
                if channels == 2 and background_yuyv is not None:
                    out, spans = self.frames.take(background_yuyv)   # holds most of the background
                    ops.composite(fg_bgr, bg_bgr, small, out, background_yuyv, spans)
                else:
                    out = np.empty((*fg_bgr.shape[:2], channels), np.uint8)
                    ops.composite(fg_bgr, bg_bgr, small, out)
                return _handed_out(out)
            size = fg_bgr.shape[:2]
            if choice.use_native("composite", size, ops.isa,
                                 lambda: self._composite_opencv(fg_bgr, bg_bgr, frame_alpha(alpha)), native):
                if yuyv and self.yuyv_pays("composite", size, ops.isa, native, lambda: native(2)):
                    return native(2)
                return native()
        return self._composite_opencv(fg_bgr, bg_bgr, frame_alpha(alpha))

    def yuyv_pays(self, op: str, size: tuple[int, int], isa: str, bgr_pass: Callable[[], np.ndarray],
                  yuyv_pass: Callable[[], np.ndarray]) -> bool:
        """Whether native pass `op` writing YUYV itself (each row converted while in cache) beats
        its BGR frame converted afterwards as the v4l2 writer would; timed once per size, like
        every native pass (capture_sink/native/choice.py). Even widths only (YUYV pairs pixels)."""
        if size[1] % 2:
            return False
        if self._to_yuyv is None or (self._to_yuyv.height, self._to_yuyv.width) != size:
            self._to_yuyv = BgrToYuyv(size[1], size[0])
        to_yuyv = self._to_yuyv
        return choice.use_native(f"{op} to YUYV", size, isa, lambda: to_yuyv.convert(bgr_pass()), yuyv_pass)

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
