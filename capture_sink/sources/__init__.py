"""Frame sources behind one interface: webcam, video file, still image and the built-in demo.

    with create_source("/dev/video0", width=1280, height=720, fps=30) as source:
        frame = source.read(timeout_s=1.0)   # Frame(image, seq, capture_time) or None

Every source runs one capture thread that keeps only the newest frame (base.py). Kinds, chosen
by `spec` (`source_kind`):
- "/dev/videoN" or "N": a V4L2 webcam through OpenCV (camera.py);
- a video file: looping (unless loop=False), paced at the file's own fps (files.py);
- an image file: repeated at `fps` (files.py);
- "demo": a real person photo shipped in the package (assets/demo_person.jpg, NASA, public
  domain), gently panned, zoomed and swayed so a mask visibly tracks it (demo.py).

File, image and demo frames are scaled to fill width x height (aspect kept, centre crop); a
webcam delivers what its driver granted, which `.width/.height/.fps` report. A new kind is one
`Source` subclass and its opener registered in `SOURCES`, plus its rule in `source_kind`.
"""

from __future__ import annotations

from .base import SOURCES, CaptureError, Frame, Source, scale_to_fill
from .camera import CameraSource, camera_error, list_cameras
from .demo import DEMO_PERSON, DemoSource
from .files import IMAGE_SUFFIXES, ImageSource, VideoFileSource, media_file

__all__ = ["DEMO_PERSON", "IMAGE_SUFFIXES", "SOURCES", "CameraSource", "CaptureError", "DemoSource", "Frame",
           "ImageSource", "Source", "VideoFileSource", "camera_error", "create_source", "list_cameras",
           "media_file", "scale_to_fill", "source_kind"]


def source_kind(spec: str) -> tuple[str, str]:
    """The `SOURCES` kind a source spec names, and the spec to open it with (a file's path expanded).

    Raises CaptureError for a file that is missing or unreadable.
    """
    if spec == "demo":
        return "demo", spec
    if spec.isdigit() or spec.startswith("/dev/video"):
        return "camera", spec
    return media_file(spec, what="source", error=CaptureError,
                      choices="give an existing video or image file, a camera (/dev/video0 or 0), or 'demo'")


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
    kind, spec = source_kind(spec)
    return SOURCES.get_or_raise(kind)(spec, width=width, height=height, fps=fps, loop=loop)
