"""Fail closed: while the look replaces the background, no camera pixel leaves without a valid mask.

People use a virtual background to hide their room. A mask is *valid* for a frame when it was
computed from a frame captured at most `max_mask_age_ms` before it: an older mask no longer fits
a person who moved, and compositing with it would uncover the room behind them. `MaskGate.admit`
returns the newest mask only while it is valid; otherwise the frame loop calls
`MaskGate.fallback`, which shows, by `--no-mask`:

    hide     the background alone (the person hidden) and a small caption (default)
    blur     the whole camera picture blurred so strongly that nothing in the room is readable,
             and the caption
    camera   the raw camera picture, and stale masks keep being used (the old behaviour, opt-in)

With the background `none` the room is shown anyway, so masks of any age are used and no mask
means the camera picture. State changes are logged once each (waiting / masks flowing again), and
`state()` tells the web page what the output shows.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from .backgrounds import Background, BlurBackground
from .config import NO_MASK_MODES

logger = logging.getLogger(__name__)

CAPTION = "waiting for a segmenter"
# --no-mask blur: sigma as a fraction of the frame height (45 px at 720p): a 20 px line of text
# becomes a smooth smear; the person stays a vague shape, nothing more.
BLUR_SIGMA_PER_HEIGHT = 1.0 / 16.0

WAITING, COMPOSITED, CAMERA = "waiting", "composited", "camera"


class Caption:
    """A small text label, rendered once per frame size, blended into a corner of each frame.

    The label (light text on a translucent dark box) is drawn into a patch when the frame size
    changes; per frame only the patch's few thousand pixels are blended (two multiplies and an
    add on the region), never the whole frame.
    """

    def __init__(self, text: str = CAPTION) -> None:
        self.text = text
        self._size: tuple[int, int] | None = None

    def _render(self, width: int, height: int) -> None:
        scale = max(0.35, height / 1080.0)
        thickness = max(1, round(scale * 1.6))
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(self.text, font, scale, thickness)
        pad = max(4, round(10 * scale))
        pw, ph = min(width, tw + 2 * pad), min(height, th + base + 2 * pad)
        colour = np.zeros((ph, pw, 3), np.uint8)
        cv2.putText(colour, self.text, (pad, pad + th), font, scale, (235, 235, 235), thickness, cv2.LINE_AA)
        ink = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        box = np.full((ph, pw), 150, np.uint8)          # the dark box: 60% opaque
        alpha = np.maximum(box, ink)                     # text fully opaque
        alpha3 = cv2.merge([alpha] * 3)
        self._premultiplied = cv2.multiply(colour, alpha3, scale=1.0 / 255.0)
        self._inverse3 = cv2.bitwise_not(alpha3)
        margin = max(6, round(16 * scale))
        x, y = min(margin, width - pw), max(0, height - ph - margin)
        self._roi = (slice(y, y + ph), slice(x, x + pw))
        self._part = np.empty((ph, pw, 3), np.uint8)
        self._size = (width, height)

    def draw(self, image: np.ndarray) -> np.ndarray:
        """Blend the caption into `image` (uint8 BGR, written in place); returns `image`."""
        height, width = image.shape[:2]
        if self._size != (width, height):
            self._render(width, height)
        region = image[self._roi]
        cv2.multiply(region, self._inverse3, dst=self._part, scale=1.0 / 255.0)
        cv2.add(self._part, self._premultiplied, dst=region)
        return image

    @property
    def box(self) -> tuple[slice, slice] | None:
        """Where the caption goes in the last frame size (rows, columns); None before the first draw."""
        return self._roi if self._size is not None else None


class MaskGate:
    """Lets a mask through only while it is valid, and makes the output when none is.

    Args:
        mode: one of NO_MASK_MODES (see the module docstring).
        max_age_ms: a mask computed from a frame captured longer than this before the frame
            being composited is no longer used.
    """

    def __init__(self, mode: str = "hide", max_age_ms: float = 500.0) -> None:
        if mode not in NO_MASK_MODES:
            raise ValueError(f"--no-mask {mode!r}: choose one of {', '.join(NO_MASK_MODES)}")
        self.mode = mode
        self.max_age_s = max_age_ms / 1000.0
        self.caption = Caption()
        self.shown = WAITING           # what the newest output frame shows (read by the web page)
        self.reason = "no mask yet"
        self.resumed = False           # True on the frame where masks became valid again
        self._logged: str | None = None  # the state last logged
        self._flowed = False
        self._out: np.ndarray | None = None
        self._blur: BlurBackground | None = None
        if mode == "camera":
            logger.warning("W: --no-mask camera: while no segmenter answers, the raw camera picture (your room) "
                           "goes to every output")

    def admit(self, result: Any, frame_time: float, background: Background, *, segmenting: bool = True) -> Any:
        """`result` (a dispatch.MaskResult or None) if it may be used for the frame captured at
        `frame_time` (time.monotonic()), else None; tracks and logs the state."""
        self.resumed = False
        if self.mode == "camera" or not background.replaces_room:
            if result is not None:
                self._flowing()
            return result
        if result is None:
            self._waiting("segmenting is off" if not segmenting else "no mask yet")
            return None
        age_s = frame_time - result.capture_time
        if age_s > self.max_age_s:
            self._waiting(f"the newest mask is {age_s * 1000:.0f} ms old (limit {self.max_age_s * 1000:.0f} ms)",
                          key="stale")
            return None
        self._flowing()
        return result

    def fallback(self, frame_bgr: np.ndarray, background: Background) -> np.ndarray:
        """The output for a frame without a valid mask (a buffer reused by the next call)."""
        if self.mode == "camera" or not background.replaces_room:
            self.shown = CAMERA
            return frame_bgr
        if self.mode == "blur":
            height = frame_bgr.shape[0]
            if self._blur is None or self._blur.sigma != round(height * BLUR_SIGMA_PER_HEIGHT, 1):
                self._blur = BlurBackground(round(height * BLUR_SIGMA_PER_HEIGHT, 1))
            picture = self._blur.render(frame_bgr)
        else:
            picture = background.render(frame_bgr, None)
        if self._out is None or self._out.shape != frame_bgr.shape:
            self._out = np.empty(frame_bgr.shape, np.uint8)
        np.copyto(self._out, picture)     # backgrounds share their buffer: draw on our own copy
        self.shown = WAITING
        return self.caption.draw(self._out)

    def state(self) -> dict[str, str]:
        """What the output shows now, for the page: {"shown": ..., "reason": ...}."""
        return {"shown": self.shown, "reason": self.reason if self.shown == WAITING else ""}

    # -- transitions, logged once each ------------------------------------------------------------------
    def _waiting(self, reason: str, key: str | None = None) -> None:
        self.reason = reason
        key = key or reason
        if self._logged != key:
            self._logged = key
            shown = "the blurred picture" if self.mode == "blur" else "the background only"
            logger.warning("W: no valid mask (%s): the output shows %s until masks flow", reason, shown)

    def _flowing(self) -> None:
        self.shown = COMPOSITED
        if self._logged != "flowing":
            self.resumed = True
            logger.info("I: masks flowing%s: compositing the person", " again" if self._flowed else "")
        self._logged = "flowing"
        self._flowed = True
