"""The benchmarks' camera-like frames: real photos with slow motion, from memory or an MJPEG file.

Every benchmark uses the same pictures (astronaut and Grace Hopper; coffee, rocket and chelsea as
backgrounds) and the same motion (a slow pan, zoom and sway, a person shifting in a chair), so
their figures describe the same scene.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from bench.mjpeg_avi import write_mjpeg_avi
from capture_sink.sources import DEMO_PERSON, Source, scale_to_fill

FPS = 30.0
BANK_FRAMES = 16
VIDEO_FRAMES = 150                 # a 5 s loop


def photo(name: str) -> np.ndarray:
    """A BGR uint8 test photo: "demo" (the sink's demo person), "hopper" or "grace_hopper" (matplotlib's
    Grace Hopper), or a skimage.data picture (astronaut, camera; coffee, chelsea, rocket), grey made
    three-channel."""
    if name == "demo":
        return cv2.imread(str(DEMO_PERSON), cv2.IMREAD_COLOR)
    if name in ("hopper", "grace_hopper"):
        import matplotlib
        return cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    from skimage import data
    image = getattr(data, name)()
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)


def moving_frame(picture: np.ndarray, i: int, n: int) -> np.ndarray:
    """Frame i of n: the picture with a slow pan, zoom and sway (a person shifting in a chair)."""
    height, width = picture.shape[:2]
    t = 2 * math.pi * i / n
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 2.0 * math.sin(t), 1.04 + 0.03 * math.sin(2 * t))
    matrix[0, 2] += 0.03 * width * math.sin(t)
    matrix[1, 2] += 0.015 * height * math.cos(t)
    return cv2.warpAffine(picture, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def frame_bank(n: int, width: int, height: int) -> list[np.ndarray]:
    """n real frames with motion: astronaut then Grace Hopper, each with a slow pan and zoom."""
    photos = [scale_to_fill(photo(name), width, height) for name in ("astronaut", "hopper")]
    return [moving_frame(photos[(i * len(photos)) // n], i, n) for i in range(n)]


# What a webcam's MJPG frames are like (a Logitech C920 class camera at 720p30 sends ~120-200 KB
# JPEGs, ~30-50 Mbit/s): 4:2:2 chroma, a high quality, and sensor noise, which the photos scaled up
# here lack (without it they compress to half a webcam's size and decode ~1.5x faster).
WEBCAM_QUALITY = 90
WEBCAM_SUBSAMPLING = "422"
SENSOR_NOISE_SIGMA = 1.5           # grey levels, per channel, after the camera's own denoising


NOISE_FIELDS = 7                   # distinct noise fields, cycled (a prime: no beat with the motion)


def webcam_jpeg(frame: np.ndarray, noise: np.ndarray) -> bytes:
    """One BGR frame as a webcam would send it: plus sensor noise (int16, the frame's shape, see
    sensor_noise), JPEG 4:2:2 at WEBCAM_QUALITY."""
    noisy = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return simplejpeg.encode_jpeg(noisy, WEBCAM_QUALITY, "BGR", WEBCAM_SUBSAMPLING)


def sensor_noise(shape: tuple[int, ...], fields: int = NOISE_FIELDS, seed: int = 0) -> list[np.ndarray]:
    """`fields` int16 fields of rounded Gaussian noise (SENSOR_NOISE_SIGMA), reproducible."""
    rng = np.random.default_rng(seed)
    return [np.rint(rng.standard_normal(shape, dtype=np.float32) * SENSOR_NOISE_SIGMA).astype(np.int16)
            for _ in range(fields)]


def write_mjpeg(path: Path, width: int, height: int, frames: int = VIDEO_FRAMES) -> Path:
    """A webcam-like MJPEG .avi at 30 fps (see webcam_jpeg): astronaut for the first half, Grace
    Hopper for the second, moving."""
    photos = [scale_to_fill(photo(name), width, height) for name in ("astronaut", "hopper")]
    noise = sensor_noise((height, width, 3))
    half = frames // 2
    jpegs = (webcam_jpeg(moving_frame(photos[i // half if i < 2 * half else 1], i % half, half),
                         noise[i % len(noise)]) for i in range(frames))
    return write_mjpeg_avi(path, jpegs, width, height, FPS)


def read_video(path: str, n: int) -> list[np.ndarray]:
    """The first n frames of a video file, looping it when it is shorter."""
    cap, frames = cv2.VideoCapture(path), []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(image)
    cap.release()
    return frames


class PacedBankSource(Source):
    """The bank at a fixed rate through the sink's real Source machinery (capture thread, newest only)."""

    def __init__(self, bank: list[np.ndarray], fps: float) -> None:
        height, width = bank[0].shape[:2]
        super().__init__(width, height, fps, "bank")
        self._bank = bank
        self._index = 0
        self._period = 1.0 / fps
        self._next: float | None = None
        self.start()

    def _grab(self) -> np.ndarray | None:
        now = time.monotonic()
        if self._next is None or now - self._next > self._period:
            self._next = now          # behind by a whole frame: restart the schedule, no burst
        if self._stop.wait(max(0.0, self._next - now)):
            return None
        self._next += self._period
        image = self._bank[self._index % len(self._bank)]
        self._index += 1
        return image
