"""A V4L2 webcam through OpenCV: MJPG requested before the size, one driver buffer, the granted
format logged; a webcam delivers what its driver granted, which `.width/.height/.fps` report.

OpenCV hands over a granted MJPG stream's JPEGs undecoded (CAP_PROP_CONVERT_RGB off) and the
sink's JpegDecoder decodes them, as it does an MJPEG file's: cheaper than OpenCV's own decode."""

from __future__ import annotations

import glob
import logging
import os

import cv2
import numpy as np

from capture_sink.v4l2_ioctl import fourcc_name

from .base import SOURCES, CaptureError, Source
from .jpeg import JpegDecoder

# A webcam that fails this many reads in a row is gone (unplugged, taken by another app).
CAMERA_MAX_FAILED_READS = 30

logger = logging.getLogger(__name__)


def list_cameras(pattern: str = "/dev/video*") -> list[str]:
    """Video device nodes that exist, in numeric order."""
    def number(path: str) -> tuple[int, str]:
        digits = "".join(ch for ch in os.path.basename(path) if ch.isdigit())
        return (int(digits) if digits else 1 << 30, path)
    return sorted(glob.glob(pattern), key=number)


def camera_error(device: str, cameras: list[str]) -> CaptureError:
    """The one-line error for a camera that would not open, with the cameras that exist."""
    found = ", ".join(cameras) if cameras else "none"
    if not os.path.exists(device):
        hint = ("plug a camera in, or use --source demo / a video file" if not cameras
                else "pick one of those with --source")
        return CaptureError(f"camera {device} does not exist (cameras found: {found}): {hint}")
    if not os.access(device, os.R_OK | os.W_OK):
        return CaptureError(f"camera {device}: permission denied (cameras found: {found}): add your user "
                            f"to the 'video' group (sudo usermod -aG video $USER, then log in again)")
    return CaptureError(f"camera {device} exists but would not open or give frames (cameras found: {found}): "
                        f"it is busy in another app (close it) or not a capture device (try another one)")


def camera_image(read: np.ndarray | None, decoder: JpegDecoder) -> np.ndarray | None:
    """The BGR image of one camera read: as OpenCV converted it, or its raw JPEG decoded.

    None for an empty read or a JPEG that would not decode (the decoder logs it); the caller
    counts it as a failed read.
    """
    if read is None or read.size == 0:
        return None
    if read.ndim == 3 and read.shape[2] == 3:
        return read
    return decoder.decode(read)


class CameraSource(Source):
    """A V4L2 webcam through OpenCV."""

    def __init__(self, device: str, width: int, height: int, fps: float) -> None:
        index_or_path: int | str = int(device) if device.isdigit() else device
        path = f"/dev/video{device}" if device.isdigit() else device
        cameras = list_cameras()
        if not os.path.exists(path):
            raise camera_error(path, cameras)
        cap = cv2.VideoCapture(index_or_path, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise camera_error(path, cameras)
        # MJPG before the size: many UVC cameras only offer 720p/1080p at 30 fps compressed, and
        # a raw YUYV request at that size falls back to 5-10 fps or a smaller size.
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver keeps one buffer: no stale backlog
        granted_fourcc = fourcc_name(int(cap.get(cv2.CAP_PROP_FOURCC)))
        # JPEGs undecoded, for JpegDecoder; any other granted format OpenCV converts to BGR itself.
        raw_jpeg = granted_fourcc.upper() in ("MJPG", "JPEG") and cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        self._decoder = JpegDecoder()
        ok, first = cap.read()
        first = camera_image(first, self._decoder) if ok else None
        if first is None:
            cap.release()
            raise camera_error(path, cameras)
        granted_fps = cap.get(cv2.CAP_PROP_FPS) or fps
        gh, gw = first.shape[:2]
        logger.info("I: camera %s granted %dx%d @ %.1f fps %s (requested %dx%d @ %.1f MJPG, buffers %s)%s",
                    path, gw, gh, granted_fps, granted_fourcc, width, height, fps,
                    int(cap.get(cv2.CAP_PROP_BUFFERSIZE)),
                    f", JPEGs decoded by {self._decoder.library}" if raw_jpeg else "")
        if (gw, gh) != (width, height):
            logger.warning("W: camera %s gives %dx%d, not the requested %dx%d: the sink uses %dx%d",
                           path, gw, gh, width, height, gw, gh)
        super().__init__(gw, gh, granted_fps, path)
        self._cap = cap
        self._failed = 0
        self.start()

    def _grab(self) -> np.ndarray | None:
        while not self._stop.is_set():
            ok, image = self._cap.read()  # blocks until the camera delivers; releases the GIL
            image = camera_image(image, self._decoder) if ok else None
            if image is not None:
                self._failed = 0
                return image
            self._failed += 1
            if self._failed >= CAMERA_MAX_FAILED_READS:
                raise CaptureError(f"camera {self.name} stopped giving frames ({self._failed} failed reads): "
                                   f"check the cable, or close the other app using it, then restart")
            self._stop.wait(0.01)
        return None

    def _release(self) -> None:
        self._cap.release()


@SOURCES.register("camera")
def open_camera(spec: str, *, width: int, height: int, fps: float, loop: bool = True) -> Source:
    return CameraSource(spec, width, height, fps)
