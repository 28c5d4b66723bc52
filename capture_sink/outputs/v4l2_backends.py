"""The three ways to write frames to a v4l2loopback device (see the table in outputs/v4l2.py):
holocam's own fcntl writer, pyvirtualcam, and a pyfakewebcam shim. The packages are imported
lazily, so a missing one is an OutputError naming the pip line, not an import failure."""

from __future__ import annotations

import errno
import os
from typing import Protocol

import numpy as np

from capture_sink import v4l2_ioctl as ioctl
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.v4l2_module import modprobe_line
from capture_sink.outputs.yuv import BgrToYuyv, make_converter

BACKENDS = ("pyvirtualcam", "pyfakewebcam", "fcntl")
_PIP = {"pyvirtualcam": "pyvirtualcam==0.15.0", "pyfakewebcam": "pyfakewebcam==0.1.0"}


def _missing_package(backend: str) -> OutputError:
    others = ", ".join(repr(b) for b in BACKENDS if b != backend)
    return OutputError(
        f"v4l2 backend {backend!r} is not installed: pip install {_PIP[backend]} "
        f"(or pip install 'holocam[v4l2]'), or choose backend {others}"
    )


class _Backend(Protocol):
    pixel_format: str

    def write(self, frame_bgr: np.ndarray) -> None: ...

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None: ...   # at pixel_format YUYV only

    def close(self) -> None: ...


def _write_all(fd: int, data: np.ndarray, device: str) -> None:
    # One write() is one frame for v4l2loopback, so a short write cannot be completed later.
    try:
        written = os.write(fd, data)
    except OSError as e:
        raise OutputError(
            f"writing to {device} failed ({e.strerror}): is v4l2loopback still loaded? {modprobe_line(device)}"
        ) from None
    if written != data.nbytes:
        raise OutputError(f"{device} took {written} of {data.nbytes} bytes of a frame: recreate the device")


class _FcntlBackend:
    """Holocam's own writer: VIDIOC_S_FMT on the checked fd, then one write() per frame."""

    def __init__(self, fd: int, device: str, width: int, height: int, pixel_format: str) -> None:
        self.pixel_format = pixel_format
        self._fd, self._device = fd, device
        self._convert = make_converter(pixel_format, width, height).convert
        try:
            ioctl.set_output_format(fd, width, height, ioctl.PIXEL_FORMATS[pixel_format])
        except OSError as e:
            if e.errno == errno.EBUSY:
                # 0.13: the format is fixed by a consumer (V4L2Output turns that into "locked to");
                # 0.14+: another opener holds the output format, i.e. a second producer is starting.
                raise OutputError(
                    f"{device} refused {width}x{height} {pixel_format} (VIDIOC_S_FMT: {e.strerror}): another "
                    f"program holds the device's output format: stop that program, or use another loopback device"
                ) from None
            raise OutputError(
                f"{device} refused {width}x{height} {pixel_format} (VIDIOC_S_FMT: {e.strerror}): "
                f"is it a v4l2loopback device? {modprobe_line(device)}"
            ) from None

    def write(self, frame_bgr: np.ndarray) -> None:
        _write_all(self._fd, self._convert(frame_bgr), self._device)

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        _write_all(self._fd, frame_yuyv, self._device)

    def close(self) -> None:
        pass  # the fd belongs to V4L2Output


def _fakewebcam_class() -> type:
    """pyfakewebcam's FakeWebcam with a frame path that works on NumPy >= 2.3 (imported lazily)."""
    try:
        from pyfakewebcam import FakeWebcam
    except ImportError:
        raise _missing_package("pyfakewebcam") from None

    class PatchedFakeWebcam(FakeWebcam):  # type: ignore[misc, valid-type]
        """FakeWebcam's device set-up (open O_WRONLY|O_SYNC, VIDIOC_S_FMT YUYV) with a working frame path.

        pyfakewebcam 0.1.0 (unmaintained since 2018) ends ``schedule_frame`` with
        the ndarray method ``tostring``, which NumPy 2.3 removed, so every frame raises AttributeError.
        ndarray cannot be patched, so this subclass replaces the method: it writes the array's
        buffer directly (no bytes copy), packs without the per-row Python loop, and converts to
        BT.601 limited range instead of the original's full-range colours.
        """

        def __init__(self, device: str, width: int, height: int) -> None:
            try:
                super().__init__(device, width, height)
            except BaseException:
                # The original opens the device, then raises from VIDIOC_S_FMT without closing it.
                if isinstance(getattr(self, "_video_device", None), int):
                    os.close(self._video_device)
                raise
            # The original's scratch buffers are never used by this class.
            self._buffer = self._yuv = self._ones = None
            self.to_yuyv = BgrToYuyv(width, height)

        def schedule_frame(self, frame_rgb: np.ndarray) -> None:
            """The original's contract (RGB in), without its NumPy 2.3 break."""
            yuyv = self.to_yuyv.convert(np.ascontiguousarray(frame_rgb[..., ::-1]))
            os.write(self._video_device, yuyv)  # the buffer itself: no tostring()/tobytes() copy

        def fileno(self) -> int:
            return self._video_device

        def close(self) -> None:
            os.close(self._video_device)

    return PatchedFakeWebcam


class _PyFakeWebcamBackend:
    def __init__(self, device: str, width: int, height: int, pixel_format: str) -> None:
        self.pixel_format = pixel_format
        self._device = device
        camera_class = _fakewebcam_class()
        try:
            self._cam = camera_class(device, width, height)
        except OSError as e:
            raise OutputError(f"pyfakewebcam could not set up {device}: {e}") from None

    def write(self, frame_bgr: np.ndarray) -> None:
        _write_all(self._cam.fileno(), self._cam.to_yuyv.convert(frame_bgr), self._device)

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        _write_all(self._cam.fileno(), frame_yuyv, self._device)

    def close(self) -> None:
        self._cam.close()


class _PyVirtualCamBackend:
    def __init__(self, device: str, width: int, height: int, fps: float, pixel_format: str) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise _missing_package("pyvirtualcam") from None
        self.pixel_format = pixel_format
        # I420: hand BGR to pyvirtualcam, whose libyuv converts faster than OpenCV can.
        # YUYV: pyvirtualcam only passes YUYV through, so holocam converts.
        self._to_yuyv = BgrToYuyv(width, height) if pixel_format == "YUYV" else None
        fmt = pyvirtualcam.PixelFormat.YUYV if pixel_format == "YUYV" else pyvirtualcam.PixelFormat.BGR
        try:
            self._cam = pyvirtualcam.Camera(
                width, height, fps, fmt=fmt, device=device, backend="v4l2loopback"
            )
        except RuntimeError as e:
            message = " ".join(str(e).split())
            raise OutputError(f"pyvirtualcam could not open {device}: {message}") from None

    def write(self, frame_bgr: np.ndarray) -> None:
        # pyvirtualcam prints write errors to stderr instead of raising; nothing to catch here.
        self._cam.send(frame_bgr if self._to_yuyv is None else self._to_yuyv.convert(frame_bgr))

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        self._cam.send(frame_yuyv)    # opened with fmt YUYV (V4L2Output checks the pixel format)

    def close(self) -> None:
        self._cam.close()
