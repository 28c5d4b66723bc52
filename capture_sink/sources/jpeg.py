"""MJPEG frame decoding for the webcam and MJPEG-file sources: libjpeg-turbo through simplejpeg.

A 720p webcam sends 30 JPEGs a second (~150 KB each, 4:2:2); decoding them is the largest single
cost of the sink (~2.3 ms a frame on a Zen 4 core, most of it libjpeg-turbo's Huffman decoding). simplejpeg wraps a current libjpeg-turbo (SIMD picked at run time: AVX2 on the common
CPU, libjpeg-turbo has no AVX-512 code) and decodes the same frame bit-exactly like cv2.imdecode
but faster; "fast" mode also upsamples the chroma by repetition inside the colour conversion
(libjpeg's merged upsampler) instead of by interpolation. Luma, and so the hologram's tint, stays
exact within rounding; chroma differs only inside each chroma block (2x1 pixels for a 4:2:2
webcam, 2x2 for 4:2:0), no finer than what the YUYV (4:2:2) output and the meeting app's 4:2:0
encoder keep. Figures: docs/sink-performance.md ("Decode, copies ..."); the capture thread's CPU
per frame in bench/results/cpu.json.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from shared.ratelog import RateLimitedLog

logger = logging.getLogger(__name__)

DECODE_MODES = ("fast", "exact")

try:  # a dependency of the sink (pyproject); cv2.imdecode stands in where it is missing
    import simplejpeg
except ImportError:  # pragma: no cover - exercised only on a broken install
    simplejpeg = None


class JpegDecoder:
    """Decodes one JPEG (a webcam's MJPG frame) to BGR uint8; None, logged, for a broken frame.

    Args:
        mode: "fast" (chroma repeated, the default) or "exact" (bit-exact with cv2.imdecode).
    """

    def __init__(self, mode: str = "fast") -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"JPEG decode mode {mode!r}: choose one of {', '.join(DECODE_MODES)}")
        self.mode = mode
        self.library = "simplejpeg (libjpeg-turbo)" if simplejpeg is not None else "cv2.imdecode"
        self.broken = 0          # frames that would not decode (dropped)
        self._broken_log = RateLimitedLog(logger, interval_s=10.0)
        if simplejpeg is None:
            logger.warning("W: simplejpeg is not installed: MJPEG frames decode with cv2.imdecode, about "
                           "25%% more CPU; reinstall holocam (pip install -e .) to get it")

    def decode(self, packet: np.ndarray | bytes) -> np.ndarray | None:
        data = packet.reshape(-1) if isinstance(packet, np.ndarray) else np.frombuffer(packet, np.uint8)
        image: np.ndarray | None
        if simplejpeg is None:
            image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        else:
            try:
                # strict=False: decode what libjpeg can recover (a truncated frame, extraneous
                # bytes before a marker, which some cameras send on every frame), as cv2 does.
                image = simplejpeg.decode_jpeg(data, "BGR", fastupsample=self.mode == "fast", strict=False)
            except ValueError as e:   # not a JPEG, or damaged beyond recovery
                self._note_broken(str(e))
                return None
        if image is None or image.ndim != 3:
            self._note_broken("not a colour JPEG")
            return None
        return image

    def _note_broken(self, why: str) -> None:
        self.broken += 1
        self._broken_log.warning("broken", "W: dropped %d MJPEG frame(s) that would not decode (last: %s): "
                                 "check the camera's cable and USB bandwidth", self.broken, why)
