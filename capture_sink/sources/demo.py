"""The built-in demo source: a real person photo shipped in the package, gently moving."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np

from .base import SOURCES, CaptureError, Pacer, Source

DEMO_PERSON = Path(__file__).resolve().parent.parent / "assets" / "demo_person.jpg"


class DemoSource(Source):
    """The built-in demo: a real person photo with a slow pan, zoom and sway.

    The photo is NASA's portrait of Eileen Collins (skimage.data.astronaut(), public domain),
    framed head-and-shoulders like a webcam; the motion is slow enough to look like a person
    shifting in their chair and large enough that the mask visibly follows.
    """

    def __init__(self, width: int, height: int, fps: float, photo: Path = DEMO_PERSON) -> None:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise CaptureError(f"the demo photo {photo} is missing or unreadable: reinstall holocam "
                               f"or run python -m capture_sink.assets.make_demo_person")
        self._photo = image
        super().__init__(width, height, fps, "demo")
        h, w = image.shape[:2]
        # Head-and-shoulders crop of the 512x512 portrait: full width, top 16:9 band.
        crop_h = min(h, w * height / width)
        self._base_scale = width / w
        self._centre = (w / 2.0, crop_h / 2.0 + 0.02 * h)
        self._t0 = time.monotonic()
        self._pacer = Pacer(fps, self._stop)
        self.start()

    def transform(self, t: float) -> np.ndarray:
        """The 2x3 affine map (photo -> frame) at time t seconds: zoom, sway and pan."""
        zoom = self._base_scale * (1.05 + 0.04 * math.sin(2 * math.pi * t / 9.0))
        angle = 3.0 * math.sin(2 * math.pi * t / 7.0)              # degrees of sway
        dx = 0.05 * self.width * math.sin(2 * math.pi * t / 11.0)  # slow side-to-side pan
        dy = 0.02 * self.height * math.sin(2 * math.pi * t / 5.0)
        matrix = cv2.getRotationMatrix2D(self._centre, angle, zoom)
        matrix[0, 2] += self.width / 2.0 - self._centre[0] + dx
        matrix[1, 2] += self.height / 2.0 - self._centre[1] + dy
        return matrix

    def _grab(self) -> np.ndarray | None:
        if not self._pacer.wait():
            return None
        matrix = self.transform(time.monotonic() - self._t0)
        return cv2.warpAffine(self._photo, matrix, (self.width, self.height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@SOURCES.register("demo")
def open_demo(spec: str, *, width: int, height: int, fps: float, loop: bool = True) -> Source:
    return DemoSource(width, height, fps)
