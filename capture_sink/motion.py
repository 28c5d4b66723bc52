"""Motion skip: reuse the current mask while the picture has not changed since the frame that made it.

The segmenter is the largest CPU cost of a frame, and in a call the camera often sees the same
picture for many frames (a still image source, a person who sits still, nobody in front of the
camera). Before a frame is sent, `MotionSkip.unchanged` compares it, at model size (the small
RGB frame the sink sends anyway: 65k pixels, ~0.05 ms), against the frame that produced the
newest mask. A pixel counts as changed when its grey-weighted difference exceeds
`PIXEL_LEVELS` (above webcam noise once averaged down to model size); the picture counts as
unchanged when fewer than `CHANGED_FRACTION` of the pixels changed. A hand that moves changes
far more pixels than that, and slow drift accumulates against the reference until it counts.
A mask older than `MAX_REUSE_S` is never reused, so a new one comes at least that often.

bench/bench_cpu.py reports the inferences saved on the demo source, a still picture and a
moving video, and the IoU of the reused masks against segmenting every frame.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import cv2
import numpy as np

logger = logging.getLogger(__name__)

PIXEL_LEVELS = 12          # grey levels (0..255) a model-size pixel must change by to count
CHANGED_FRACTION = 0.002   # unchanged while under 0.2% of the pixels (~130 of 256x256) changed
MAX_REUSE_S = 2.0          # a reused mask is refreshed at least this often (seconds since capture)
REFRESH_BEFORE_STALE = 0.8  # ... and by 80% of the fail-closed max mask age, whichever is sooner
KEEP_REFERENCES = 8        # frames sent and not yet answered that may become the reference


def reuse_limit_s(max_mask_age_ms: float) -> float:
    """How long a still scene may reuse a mask: a refresh is asked for before the fail-closed gate
    (capture_sink.failclosed) would find the mask too old, leaving the segmenter 20% of the age."""
    return min(MAX_REUSE_S, REFRESH_BEFORE_STALE * max_mask_age_ms / 1000.0)


class MotionSkip:
    """Remembers the frames sent to the segmenters; says when a new frame can reuse the newest mask.

    Args:
        enabled: False makes `unchanged` always answer False (every frame is segmented).
        pixel_levels, changed_fraction, max_reuse_s: see the module constants.
    """

    def __init__(self, enabled: bool = True, *, pixel_levels: int = PIXEL_LEVELS,
                 changed_fraction: float = CHANGED_FRACTION, max_reuse_s: float = MAX_REUSE_S) -> None:
        self.enabled = enabled
        self.pixel_levels = int(pixel_levels)
        self.changed_fraction = float(changed_fraction)
        self.max_reuse_s = float(max_reuse_s)
        self._sent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._diff: np.ndarray | None = None
        self._grey: np.ndarray | None = None
        self.skipped = 0            # frames that reused a mask

    def sent(self, small_rgb: np.ndarray, seq: int) -> None:
        """Record a frame handed to the dispatcher (kept, not copied: do not write into it)."""
        if not self.enabled:
            return
        self._sent[seq] = small_rgb
        while len(self._sent) > KEEP_REFERENCES:
            self._sent.popitem(last=False)

    def unchanged(self, small_rgb: np.ndarray, mask_seq: int | None, mask_capture_time: float | None,
                  now: float | None = None) -> bool:
        """True when `small_rgb` may reuse the mask of frame `mask_seq` (captured at `mask_capture_time`).

        Args:
            small_rgb: the new frame at model size, as prepared for the segmenters.
            mask_seq, mask_capture_time: the newest applied mask's frame, or None before the first.
            now: time.monotonic() (for tests).
        """
        if not self.enabled or mask_seq is None:
            return False
        reference = self._sent.get(mask_seq)
        if reference is None or reference.shape != small_rgb.shape:
            return False
        now = time.monotonic() if now is None else now
        if now - mask_capture_time > self.max_reuse_s:
            return False
        if self._diff is None or self._diff.shape != small_rgb.shape:
            self._diff = np.empty_like(small_rgb)
            self._grey = np.empty(small_rgb.shape[:2], np.uint8)
        cv2.absdiff(small_rgb, reference, dst=self._diff)
        cv2.cvtColor(self._diff, cv2.COLOR_RGB2GRAY, dst=self._grey)
        cv2.threshold(self._grey, self.pixel_levels, 255, cv2.THRESH_BINARY, dst=self._grey)
        still = cv2.countNonZero(self._grey) <= self.changed_fraction * self._grey.size
        if still:
            self.skipped += 1
        return still
