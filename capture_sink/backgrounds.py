"""Backgrounds the person is composited over: `create_background(spec).render(frame) -> bgr`.

Specs:
    default | holodeck   a generated holodeck (dark room, amber grid), no file needed
    path/to/image.jpg    an image scaled to fill (aspect kept, centre crop), cached per size
    path/to/video.mp4    a looping video, decoded in its own thread at its own fps
    blur | blur:N        the real background blurred (Gaussian sigma N frame pixels, default 15)
    green                a green screen (#00ff00) for keying in OBS and the like
    #rrggbb | red | ...  a solid colour
    none                 pass-through: the real background (output = frame where alpha is 0)

`render` returns a buffer owned by the background (or the frame itself for `none`): consume it
before the next call. Images are read when the background is created, so a missing or unreadable
file fails at start-up with a one-line BackgroundError, not in the frame loop.

Every kind is a builder in `BACKGROUNDS` (a `shared.registry.Registry`): a word kind ("blur") is
chosen by its word, the others ("colour", "image", "video") by what the spec is.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Callable

import cv2
import numpy as np

from capture_sink.sources import CaptureError, VideoFileSource, media_file, scale_to_fill
from shared.registry import Registry

logger = logging.getLogger(__name__)

DEFAULT_BLUR_SIGMA = 15.0
# The blur runs on a pyramid level where at least this sigma (pixels) remains: a sigma-15
# Gaussian at 720p costs ~10 ms; on the 1/4 level it costs well under a millisecond and looks
# the same once upsampled. pyrDown itself blurs before decimating, so nothing aliases.
BLUR_SIGMA_AT_LOW_RES = 1.5
FIRST_VIDEO_FRAME_TIMEOUT_S = 2.0

COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "red": (0, 0, 255), "blue": (255, 0, 0), "navy": (80, 30, 10), "teal": (128, 128, 0),
    "purple": (128, 0, 128), "orange": (0, 140, 255), "yellow": (0, 255, 255),
}
GREEN_SCREEN_BGR = (0, 255, 0)


class BackgroundError(RuntimeError):
    """A background the user must fix; the message is one line that says how."""


class Background(ABC):
    """One kind of background. `render` gives a BGR uint8 image of the frame's size."""

    replaces_room = True   # False only for `none`: then the room is shown whatever the mask
    still = False          # True: `render` gives the same read-only array every frame of a size

    @abstractmethod
    def render(self, frame_bgr: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """Background for `frame_bgr` (uint8 (H, W, 3)).

        Args:
            frame_bgr: the camera frame.
            alpha: optional uint8 (H, W) person alpha; `blur` uses it so the person's colours do
                not bleed into the blurred background. Others ignore it.
        """

    def close(self) -> None:
        """Release files and threads (video backgrounds)."""

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SizeCached(Background):
    """A background that only depends on the frame size: built once per size."""

    still = True

    def __init__(self) -> None:
        self._cache: tuple[tuple[int, int], np.ndarray] | None = None

    @abstractmethod
    def _build(self, width: int, height: int) -> np.ndarray: ...

    def render(self, frame_bgr: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        height, width = frame_bgr.shape[:2]
        if self._cache is None or self._cache[0] != (width, height):
            image = np.ascontiguousarray(self._build(width, height), dtype=np.uint8)
            image.flags.writeable = False  # shared by every frame
            self._cache = ((width, height), image)
        return self._cache[1]


class ImageBackground(_SizeCached):
    def __init__(self, path: str) -> None:
        super().__init__()
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise BackgroundError(f"cannot read background image {path}: not an image OpenCV can decode; "
                                  f"use a PNG or JPEG")
        self.path, self._image = path, image

    def _build(self, width: int, height: int) -> np.ndarray:
        return scale_to_fill(self._image, width, height)


class SolidBackground(_SizeCached):
    def __init__(self, bgr: tuple[int, int, int]) -> None:
        super().__init__()
        self.bgr = bgr

    def _build(self, width: int, height: int) -> np.ndarray:
        return np.full((height, width, 3), self.bgr, np.uint8)


class HolodeckBackground(_SizeCached):
    """A generated holodeck: dark room, amber grid on the back wall and a perspective floor."""

    def _build(self, width: int, height: int) -> np.ndarray:
        return holodeck(width, height)


class NoneBackground(Background):
    """Pass-through: the real background stays."""

    replaces_room = False

    def render(self, frame_bgr: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        return frame_bgr


class BlurBackground(Background):
    """The real background, blurred; with an alpha, person pixels are left out of the blur."""

    def __init__(self, sigma: float = DEFAULT_BLUR_SIGMA) -> None:
        if not 0 < sigma <= 200:
            raise BackgroundError(f"blur strength {sigma} is out of range: use blur:N with N in 1..200")
        self.sigma = float(sigma)
        self._shape: tuple[int, int] | None = None

    def _allocate(self, width: int, height: int) -> None:
        levels, sw, sh = 0, width, height
        while self.sigma / 2 ** (levels + 1) >= BLUR_SIGMA_AT_LOW_RES and min(sw, sh) >= 32:
            levels, sw, sh = levels + 1, (sw + 1) // 2, (sh + 1) // 2
        self._levels = [np.empty(((height + 2 ** k - 1) // 2 ** k, (width + 2 ** k - 1) // 2 ** k, 3),
                                 np.uint8) for k in range(1, levels + 1)]
        self._small_size = (sw, sh)
        self._small_sigma = self.sigma / 2 ** levels
        self._small = self._levels[-1] if self._levels else np.empty((sh, sw, 3), np.uint8)
        self._small_f = np.empty((sh, sw, 3), np.float32)
        self._weight = np.empty((sh, sw), np.uint8)
        self._grow = np.ones((5, 5), np.uint8)
        self._weight_f = np.empty((sh, sw), np.float32)
        self._weight3 = np.empty((sh, sw, 3), np.float32)
        self._num = np.empty((sh, sw, 3), np.float32)
        self._out = np.empty((height, width, 3), np.uint8)
        self._shape = (width, height)

    def render(self, frame_bgr: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        height, width = frame_bgr.shape[:2]
        if self._shape != (width, height):
            self._allocate(width, height)
        sw, sh = self._small_size
        if self._levels:
            source = frame_bgr
            for level in self._levels:
                source = cv2.pyrDown(source, dst=level, dstsize=(level.shape[1], level.shape[0]))
        else:
            np.copyto(self._small, frame_bgr)
        sigma = self._small_sigma
        if alpha is None:
            cv2.GaussianBlur(self._small, (0, 0), sigma, dst=self._small)
        else:
            # Normalised convolution: blur(frame * w) / blur(w), w = background weight, so the
            # person does not smear a coloured halo into the blurred room around them.
            cv2.resize(alpha, (sw, sh), dst=self._weight, interpolation=cv2.INTER_LINEAR)
            # pyrDown already smeared the person a pixel or two outwards: widen what we exclude
            cv2.dilate(self._weight, self._grow, dst=self._weight)
            cv2.subtract(255.0, self._weight, dst=self._weight_f, dtype=cv2.CV_32F)
            cv2.add(self._weight_f, 1.0, dst=self._weight_f)  # never divide by zero
            cv2.merge([self._weight_f] * 3, dst=self._weight3)
            np.copyto(self._small_f, self._small)
            cv2.multiply(self._small_f, self._weight3, dst=self._num)
            cv2.GaussianBlur(self._num, (0, 0), sigma, dst=self._num)
            cv2.GaussianBlur(self._weight3, (0, 0), sigma, dst=self._weight3)
            cv2.divide(self._num, self._weight3, dst=self._num)
            np.copyto(self._small, self._num, casting="unsafe")
        return cv2.resize(self._small, (width, height), dst=self._out, interpolation=cv2.INTER_LINEAR)


class VideoBackground(Background):
    """A looping video, decoded by a `VideoFileSource` thread at the video's own fps."""

    def __init__(self, path: str) -> None:
        probe = cv2.VideoCapture(path)
        ok = probe.isOpened() and probe.read()[0]
        probe.release()
        if not ok:
            raise BackgroundError(f"cannot read background video {path}: not a video OpenCV can decode; "
                                  f"convert it (e.g. ffmpeg -i {path} out.mp4) or use an image")
        self.path = path
        self._source: VideoFileSource | None = None
        self._last: np.ndarray | None = None

    def render(self, frame_bgr: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        height, width = frame_bgr.shape[:2]
        if self._source is None or (self._source.width, self._source.height) != (width, height):
            self.close()
            try:
                self._source = VideoFileSource(self.path, width, height, fps=30, loop=True)
            except CaptureError as exc:
                raise BackgroundError(str(exc)) from exc
            first = self._source.read(FIRST_VIDEO_FRAME_TIMEOUT_S)
            self._last = first.image if first is not None else np.zeros((height, width, 3), np.uint8)
        frame = self._source.read(0.0)  # newest decoded frame, or keep showing the last one
        if frame is not None:
            self._last = frame.image
        return self._last

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def holodeck(width: int, height: int) -> np.ndarray:
    """A holodeck room: near-black walls, an amber grid with a soft glow, a dim blue haze."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    # dark room, lighter towards the centre of the back wall
    haze = np.exp(-((x * 0.9) ** 2 + ((y - 0.45) * 1.6) ** 2) * 2.2)
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 16 + 46 * haze   # B
    image[..., 1] = 10 + 26 * haze   # G
    image[..., 2] = 8 + 14 * haze    # R

    lines = np.zeros((height, width), np.uint8)
    horizon = int(height * 0.62)
    left, right = int(width * 0.2), int(width * 0.8)
    top = int(height * 0.12)
    thick = max(1, round(height / 360))
    step = max(8, (right - left) // 10)
    # back wall grid
    for gx in range(left, right + 1, step):
        cv2.line(lines, (gx, top), (gx, horizon), 255, thick, cv2.LINE_AA)
    for gy in range(top, horizon + 1, step):
        cv2.line(lines, (left, gy), (right, gy), 255, thick, cv2.LINE_AA)
    # floor: lines from the wall's base towards the viewer, and receding cross lines
    for i in range(-10, 21):
        bx = left + i * step
        cv2.line(lines, (bx, horizon), (int(width / 2 + (bx - width / 2) * 3.2), height), 255, thick, cv2.LINE_AA)
    for k in range(1, 8):
        gy = horizon + int((height - horizon) * (k / 7.0) ** 1.7)
        cv2.line(lines, (0, gy), (width, gy), 255, thick, cv2.LINE_AA)
    # ceiling and side walls mirror the floor's perspective
    for i in range(-10, 21):
        bx = left + i * step
        cv2.line(lines, (bx, top), (int(width / 2 + (bx - width / 2) * 3.2), 0), 160, thick, cv2.LINE_AA)
    for corner_from, corner_to in (((left, top), (0, 0)), ((right, top), (width, 0)),
                                   ((left, horizon), (0, height)), ((right, horizon), (width, height))):
        cv2.line(lines, corner_from, corner_to, 255, thick, cv2.LINE_AA)

    lines_f = lines.astype(np.float32) / 255.0
    glow = cv2.GaussianBlur(lines_f, (0, 0), max(2.0, height / 120))
    fade = 0.35 + 0.65 * haze  # the grid fades into the dark at the edges
    amber = np.array([40, 170, 255], np.float32)  # BGR
    image += (lines_f * 0.75 + glow * 1.2)[..., None] * fade[..., None] * amber
    return np.clip(image, 0, 255).astype(np.uint8)


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    """BGR of '#rrggbb' or a colour name, None if `spec` is neither."""
    text = spec.strip().lower()
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) != 6 or any(c not in "0123456789abcdef" for c in digits):
            raise BackgroundError(f"colour {spec!r} is not #rrggbb: write it like #1e90ff")
        r, g, b = (int(digits[i:i + 2], 16) for i in (0, 2, 4))
        return (b, g, r)
    return COLOURS_BGR.get(text)


# kind -> builder(argument) -> Background. The argument is what follows "kind:" for a word kind
# that takes one (blur), the colour text for "colour", the expanded path for "image" and "video".
BACKGROUNDS: Registry[Callable[[str], Background]] = Registry("background", BackgroundError)
BY_CONTENT = ("colour", "image", "video")   # chosen by what the spec is, never by their word
TAKES_ARGUMENT = ("blur",)                  # word kinds written "word:argument"


BACKGROUNDS.add("default", lambda _: HolodeckBackground())
BACKGROUNDS.add("holodeck", lambda _: HolodeckBackground())
BACKGROUNDS.add("none", lambda _: NoneBackground())
BACKGROUNDS.add("green", lambda _: SolidBackground(GREEN_SCREEN_BGR))
BACKGROUNDS.add("image", ImageBackground)
BACKGROUNDS.add("video", VideoBackground)


@BACKGROUNDS.register("blur")
def _blur(strength: str) -> Background:
    try:
        sigma = float(strength) if strength else DEFAULT_BLUR_SIGMA
    except ValueError:
        raise BackgroundError(f"blur strength {strength!r} is not a number: write blur:15") from None
    return BlurBackground(sigma)


@BACKGROUNDS.register("colour")
def _colour(text: str) -> Background:
    return SolidBackground(parse_colour(text))


def background_kind(text: str) -> tuple[str, str]:
    """The `BACKGROUNDS` kind a spec names and its argument (see BACKGROUNDS)."""
    word = text.lower()
    name, colon, argument = word.partition(":")
    if name in BACKGROUNDS and name not in BY_CONTENT and (not colon or name in TAKES_ARGUMENT):
        return name, argument
    if parse_colour(text) is not None:
        return "colour", text
    return media_file(text, what="background", error=BackgroundError,
                      choices="give an image or video file, a colour (#rrggbb or a name), blur[:N], green, "
                              "none or default")


def create_background(spec: str) -> Background:
    """Build the background named by `spec` (see the module docstring).

    Raises:
        BackgroundError: missing/unreadable file, bad colour or blur strength; one line naming the fix.
    """
    kind, argument = background_kind(str(spec).strip())
    return BACKGROUNDS.get_or_raise(kind)(argument)
