"""File sources: a video file (paced at its own fps, looping unless loop=False) and a still image
(repeated at `fps`); both scaled to fill width x height (aspect kept, centre crop)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np

from capture_sink.v4l2_ioctl import fourcc_name

from .base import SOURCES, CaptureError, Pacer, Source, scale_to_fill
from .jpeg import JpegDecoder

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}

logger = logging.getLogger(__name__)


def media_file(spec: str, *, what: str, choices: str, error: type[Exception]) -> tuple[str, str]:
    """("image" or "video", the expanded path) of a readable file; `error` naming the fix if it is not.

    Args:
        spec: the path as the user wrote it (~ allowed).
        what: what it was given as, for the message ("source", "background").
        choices: what else the user could give, for the message of a path that does not exist.
    """
    path = Path(spec).expanduser()
    if not path.exists():
        raise error(f"{what} {spec!r} not found: {choices}")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise error(f"{what} {spec!r} is not a readable file: check the path and its permissions")
    return ("image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"), str(path)


def _open_video(path: str) -> tuple[cv2.VideoCapture, bool]:
    """The capture of `path`, and whether it hands out raw JPEG packets.

    An MJPEG file is read packet by packet and each JPEG decoded by the sink's JpegDecoder
    (libjpeg-turbo), exactly as the camera source decodes a webcam's MJPG frames: far less CPU
    than FFmpeg's decoder and colour conversion, and no FFmpeg decoding threads.
    """
    cap = cv2.VideoCapture(path)
    fourcc = fourcc_name(int(cap.get(cv2.CAP_PROP_FOURCC))) if cap.isOpened() else ""
    jpeg = fourcc.upper() == "MJPG" and cap.set(cv2.CAP_PROP_FORMAT, -1)
    return cap, bool(jpeg)


class VideoFileSource(Source):
    """A video file, paced at its own fps, looping unless loop=False."""

    def __init__(self, path: str, width: int, height: int, fps: float, loop: bool = True) -> None:
        cap, self._jpeg = _open_video(path)
        self._decoder = JpegDecoder()
        self._cap = cap
        first = self._read() if cap.isOpened() else None
        if first is None:
            cap.release()
            raise CaptureError(f"cannot read video {path}: not a video OpenCV can decode; "
                               f"convert it (e.g. ffmpeg -i {path} out.mp4) or pick another file")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        pace = file_fps if file_fps and math.isfinite(file_fps) and 1 <= file_fps <= 240 else fps
        super().__init__(width, height, pace, os.path.basename(path))
        self._path, self._loop = path, loop
        self._pending: np.ndarray | None = first
        self._pacer = Pacer(pace, self._stop)
        logger.info("I: video %s: %dx%d @ %.2f fps%s, scaled to fill %dx%d%s", path, first.shape[1],
                    first.shape[0], pace, " (MJPEG, decoded frame by frame as a webcam's)" if self._jpeg else "",
                    width, height, ", looping" if loop else "")
        self.start()

    def _read(self) -> np.ndarray | None:
        """The next BGR image of the file (a JPEG packet decoded, for MJPEG), None at its end.

        A packet that does not decode is skipped (the decoder counts and logs it), as a webcam's
        broken frame is: one bad frame must not end or rewind the video.
        """
        while True:
            ok, data = self._cap.read()
            if not ok or data is None:
                return None
            image = self._decoder.decode(data) if self._jpeg else data
            if image is not None:
                return image

    def _next_image(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        image = self._read()
        if image is not None:
            return image
        if not self._loop:
            return None
        # rewind; some containers refuse seeking, so reopen as the fallback
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._cap.release()
            self._cap, self._jpeg = _open_video(self._path)
        image = self._read()
        if image is None:
            raise CaptureError(f"video {self._path} could not be read again after its end: "
                               f"re-encode it (e.g. ffmpeg -i {self._path} out.mp4)")
        return image

    def _grab(self) -> np.ndarray | None:
        image = self._next_image()
        if image is None or not self._pacer.wait():
            return None
        return scale_to_fill(image, self.width, self.height)

    def _release(self) -> None:
        self._cap.release()


class ImageSource(Source):
    """A still image repeated at `fps` (the same read-only array every frame)."""

    def __init__(self, path: str, width: int, height: int, fps: float) -> None:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise CaptureError(f"cannot read image {path}: not an image OpenCV can decode; use a PNG or JPEG")
        self._image = scale_to_fill(image, width, height).copy()
        self._image.flags.writeable = False  # shared by every frame: nobody may draw on it
        super().__init__(width, height, fps, os.path.basename(path))
        self._pacer = Pacer(fps, self._stop)
        self.start()

    def _grab(self) -> np.ndarray | None:
        return self._image if self._pacer.wait() else None


@SOURCES.register("video")
def open_video(spec: str, *, width: int, height: int, fps: float, loop: bool = True) -> Source:
    return VideoFileSource(spec, width, height, fps, loop=loop)


@SOURCES.register("image")
def open_image(spec: str, *, width: int, height: int, fps: float, loop: bool = True) -> Source:
    return ImageSource(spec, width, height, fps)
