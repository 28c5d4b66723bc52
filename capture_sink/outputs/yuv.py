"""BGR -> YUYV / I420 for v4l2loopback: BT.601, limited range, averaged chroma, preallocated.

Why these choices:
- v4l2loopback reports colorspace SRGB for every format; for YUV that means BT.601 Y'CbCr
  with limited range (Y 16..235, Cb/Cr 16..240), which is what browsers and OBS assume.
  pyfakewebcam's own path sends full-range values (crushed blacks/whites in consumers).
- Chroma is the average of the pixels it covers (2 for YUYV, 2x2 for I420), as libyuv does.
  Point-sampled chroma aliases on fine horizontal patterns such as the hologram's scanlines.

pyvirtualcam's libyuv converts BGR -> I420 several times faster than OpenCV, which is why that
backend is handed BGR (the costs: docs/sink-performance.md). BGR -> YUYV runs in the sink's native
pass (capture_sink/native/frame_ops.c, the same arithmetic to within 0.52 of a level) where that
is faster than OpenCV on this CPU.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from capture_sink.native import choice, library

logger = logging.getLogger(__name__)

# Full-range chroma (what COLOR_BGR2YCrCb gives) to limited range: 128 + (c - 128) * 224/255.
_FULL_TO_LIMITED_CHROMA = np.clip(
    np.round(128.0 + (np.arange(256, dtype=np.float32) - 128.0) * (224.0 / 255.0)), 0, 255
).astype(np.uint8)


def frame_bytes(pixel_format: str, width: int, height: int) -> int:
    """Bytes of one packed frame: YUYV 2 per pixel, I420 1.5 per pixel."""
    if pixel_format == "YUYV":
        return width * height * 2
    if pixel_format == "I420":
        return width * height * 3 // 2
    raise ValueError(f"unknown pixel format {pixel_format!r}")


class BgrToYuyv:
    """Packs BGR frames as YUYV 4:2:2 (Y0 U Y1 V per pixel pair) into one reused buffer."""

    pixel_format = "YUYV"

    def __init__(self, width: int, height: int) -> None:
        if width % 2:
            raise ValueError("YUYV needs an even width")
        self.width, self.height = width, height
        self._out = np.empty((height, width, 2), np.uint8)

    def convert(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Return the YUYV frame as a (height, width, 2) view of the reused buffer."""
        ops = library.load()
        if ops is not None and library.accepts(frame_bgr, None, None) \
                and frame_bgr.shape[:2] == (self.height, self.width):
            def native() -> np.ndarray:
                ops.bgr_to_yuyv(frame_bgr, self._out)
                return self._out
            if choice.use_native("BGR to YUYV", (self.height, self.width), ops.isa,
                                 lambda: self._convert_opencv(frame_bgr), native):
                return native()
        return self._convert_opencv(frame_bgr)

    def _convert_opencv(self, frame_bgr: np.ndarray) -> np.ndarray:
        # OpenCV's YUY2 conversion is BT.601 limited range with each chroma sample the
        # average of its pixel pair (checked against a float reference in the tests).
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_YUY2, self._out)
        return self._out


class BgrToI420:
    """Packs BGR frames as planar I420 (Y plane, then U and V at half size) into one reused buffer."""

    pixel_format = "I420"

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise ValueError("I420 needs an even width and height")
        self.width, self.height = width, height
        self._out = np.empty((height * 3 // 2, width), np.uint8)
        flat = self._out.reshape(-1)
        plane = width * height
        quarter = plane // 4
        self._u = flat[plane : plane + quarter].reshape(height // 2, width // 2)
        self._v = flat[plane + quarter :].reshape(height // 2, width // 2)
        self._half = np.empty((height // 2, width // 2, 3), np.uint8)
        self._ycrcb = np.empty_like(self._half)

    def convert(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Return the I420 frame as a (height * 3/2, width) view of the reused buffer."""
        # Y comes from OpenCV's I420 conversion (BT.601 limited); its chroma is point-sampled,
        # so it is overwritten below with chroma of the 2x2-averaged image.
        cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420, self._out)
        # An exact 2:1 bilinear downscale samples between the pixels: a 2x2 average.
        cv2.resize(frame_bgr, (self.width // 2, self.height // 2), self._half,
                   interpolation=cv2.INTER_LINEAR)
        cv2.cvtColor(self._half, cv2.COLOR_BGR2YCrCb, self._ycrcb)
        cv2.LUT(self._ycrcb, _FULL_TO_LIMITED_CHROMA, self._ycrcb)
        cv2.mixChannels([self._ycrcb], [self._u, self._v], [2, 0, 1, 1])
        return self._out


def make_converter(pixel_format: str, width: int, height: int) -> BgrToYuyv | BgrToI420:
    """The converter for ``pixel_format`` ("YUYV" or "I420")."""
    if pixel_format == "YUYV":
        return BgrToYuyv(width, height)
    if pixel_format == "I420":
        return BgrToI420(width, height)
    raise ValueError(f"unknown pixel format {pixel_format!r}")
