"""Frame sources behind one interface: webcam, video file, still image and the built-in demo.

    with create_source("/dev/video0", width=1280, height=720, fps=30) as source:
        frame = source.read(timeout_s=1.0)   # Frame(image, seq, capture_time) or None

Every source runs one capture thread that keeps only the newest frame. A reader that is slower
than the source sees increasing `seq` numbers with gaps; the frames it skipped were dropped
(counted in `dropped`), never queued, so the sink always works on the present.

Kinds, chosen by `spec`:
- "/dev/videoN" or "N": a V4L2 webcam through OpenCV (MJPG requested before the size, buffer
  size 1, the granted format logged);
- a video file: looping (unless loop=False), paced at the file's own fps;
- an image file: repeated at `fps`;
- "demo": a real person photo shipped in the package (assets/demo_person.jpg, NASA, public
  domain), gently panned, zoomed and swayed so a mask visibly tracks it.

File, image and demo frames are scaled to fill width x height (aspect kept, centre crop); a
webcam delivers what its driver granted, which `.width/.height/.fps` report.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .v4l2_ioctl import fourcc_name

logger = logging.getLogger(__name__)

DEMO_PERSON = Path(__file__).parent / "assets" / "demo_person.jpg"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
# A webcam that fails this many reads in a row is gone (unplugged, taken by another app).
CAMERA_MAX_FAILED_READS = 30
JOIN_TIMEOUT_S = 2.0


class CaptureError(RuntimeError):
    """A source the user must fix; the message is one line that says how."""


@dataclass(frozen=True)
class Frame:
    """One captured frame: BGR uint8 (H, W, 3), its sequence number and monotonic capture time."""

    image: np.ndarray
    seq: int
    capture_time: float


def scale_to_fill(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to cover width x height, aspect kept, centre-cropped (no copy if same size)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interpolation)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y:y + height, x:x + width])


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


class Source(ABC):
    """A frame source with a capture thread that keeps only the newest frame.

    Subclasses implement `_grab()` (block until the next frame is due, return it, or None at the
    end of a finite source) and may override `_release()`.
    """

    def __init__(self, width: int, height: int, fps: float, name: str) -> None:
        self.width, self.height, self.fps, self.name = width, height, float(fps), name
        self.captured = 0
        self.dropped = 0           # frames replaced before anyone read them
        self.ended = False         # a finite source ran out (video with loop=False)
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._last_read_seq = -1
        self._error: CaptureError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Source":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                image = self._grab()
                if image is None:
                    if self._stop.is_set():
                        break
                    with self._cond:
                        self.ended = True
                        self._cond.notify_all()
                    logger.info("I: source %s ended after %d frames", self.name, self.captured)
                    break
                frame = Frame(image, seq, time.monotonic())
                seq += 1
                with self._cond:
                    if self._newest is not None and self._newest.seq > self._last_read_seq:
                        self.dropped += 1
                    self._newest = frame
                    self.captured += 1
                    self._cond.notify_all()
        except CaptureError as exc:
            logger.error("E: %s", exc)
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def read(self, timeout_s: float) -> Frame | None:
        """The newest frame not returned before, waiting up to `timeout_s`; None on timeout or end.

        Raises:
            CaptureError: the source failed (camera unplugged or taken away).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._newest is not None and self._newest.seq > self._last_read_seq:
                    self._last_read_seq = self._newest.seq
                    return self._newest
                if self._error is not None:
                    raise self._error
                remaining = deadline - time.monotonic()
                if self.ended or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    @abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Block until the next frame is due and return it (None: a finite source ended)."""

    def _release(self) -> None:
        pass

    def close(self) -> None:
        """Stop the capture thread and release the device or file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                logger.warning("W: capture thread of %s did not stop within %.0f s", self.name, JOIN_TIMEOUT_S)
        self._release()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pacer:
    """Sleeps until the next frame time of a fixed rate; after a stall it restarts the schedule
    instead of bursting to catch up."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.period = 1.0 / fps
        self.stop = stop
        self.next_t: float | None = None

    def wait(self) -> bool:
        now = time.monotonic()
        if self.next_t is None or now - self.next_t > self.period:
            self.next_t = now
        delay = self.next_t - now
        self.next_t += self.period
        return not self.stop.wait(delay) if delay > 0 else not self.stop.is_set()


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
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise camera_error(path, cameras)
        granted_fourcc = fourcc_name(int(cap.get(cv2.CAP_PROP_FOURCC)))
        granted_fps = cap.get(cv2.CAP_PROP_FPS) or fps
        gh, gw = first.shape[:2]
        logger.info("I: camera %s granted %dx%d @ %.1f fps %s (requested %dx%d @ %.1f MJPG, buffers %s)",
                    path, gw, gh, granted_fps, granted_fourcc, width, height, fps,
                    int(cap.get(cv2.CAP_PROP_BUFFERSIZE)))
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
            if ok and image is not None:
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


class VideoFileSource(Source):
    """A video file, paced at its own fps, looping unless loop=False."""

    def __init__(self, path: str, width: int, height: int, fps: float, loop: bool = True) -> None:
        cap = cv2.VideoCapture(path)
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            raise CaptureError(f"cannot read video {path}: not a video OpenCV can decode; "
                               f"convert it (e.g. ffmpeg -i {path} out.mp4) or pick another file")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        pace = file_fps if file_fps and math.isfinite(file_fps) and 1 <= file_fps <= 240 else fps
        super().__init__(width, height, pace, os.path.basename(path))
        self._cap, self._path, self._loop = cap, path, loop
        self._pending: np.ndarray | None = first
        self._pacer = _Pacer(pace, self._stop)
        logger.info("I: video %s: %dx%d @ %.2f fps, scaled to fill %dx%d%s", path, first.shape[1],
                    first.shape[0], pace, width, height, ", looping" if loop else "")
        self.start()

    def _next_image(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        ok, image = self._cap.read()
        if ok and image is not None:
            return image
        if not self._loop:
            return None
        # rewind; some containers refuse seeking, so reopen as the fallback
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._cap.release()
            self._cap = cv2.VideoCapture(self._path)
        ok, image = self._cap.read()
        if not ok or image is None:
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
        self._pacer = _Pacer(fps, self._stop)
        self.start()

    def _grab(self) -> np.ndarray | None:
        return self._image if self._pacer.wait() else None


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
        self._pacer = _Pacer(fps, self._stop)
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


def create_source(spec: str, *, width: int = 1280, height: int = 720, fps: float = 30,
                  loop: bool = True) -> Source:
    """Open a frame source and start its capture thread.

    Args:
        spec: "demo", a camera ("/dev/video0" or "0"), or a video or image file path.
        width, height, fps: requested frame size and rate (files and demo are scaled to fill).
        loop: restart a video file at its end (False: `read` returns None and `ended` is set).
    Returns:
        A started `Source`; close it (or use it as a context manager).
    Raises:
        CaptureError: the camera or file cannot be used; the message names the fix.
    """
    if width <= 0 or height <= 0 or fps <= 0:
        raise CaptureError(f"source size {width}x{height} @ {fps} fps is invalid: use positive numbers")
    spec = str(spec).strip()
    if spec == "demo":
        return DemoSource(width, height, fps)
    if spec.isdigit() or spec.startswith("/dev/video"):
        return CameraSource(spec, width, height, fps)
    path = Path(spec).expanduser()
    if not path.exists():
        raise CaptureError(f"source {spec!r} not found: give an existing video or image file, a camera "
                           f"(/dev/video0 or 0), or 'demo'")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise CaptureError(f"source {spec!r} is not a readable file: check the path and its permissions")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(str(path), width, height, fps)
    return VideoFileSource(str(path), width, height, fps, loop=loop)
