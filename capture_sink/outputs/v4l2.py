"""Virtual camera output: write frames to a v4l2loopback device that Zoom, Meet, Chrome and OBS can open.

Three backends, chosen with ``backend=``; all of them send BT.601 limited-range YUV, the range
consumers assume for the SRGB colorspace v4l2loopback reports:

=============  ===============  ==========================================================
backend        pixel_format     who converts BGR, and how
=============  ===============  ==========================================================
pyvirtualcam   YUYV (default)   holocam (capture_sink.outputs.yuv), pair-averaged chroma;
                                pyvirtualcam passes YUYV through (S_FMT YUYV, one write())
pyvirtualcam   I420             pyvirtualcam's bundled libyuv (RGB24ToI420), 2x2-averaged chroma
pyfakewebcam   YUYV (only)      holocam; pyfakewebcam only opens the device and sets the format
fcntl          YUYV (default)   holocam; plain open/ioctl/write, no third-party package
fcntl          I420             holocam
=============  ===============  ==========================================================

YUYV is the default because every consumer takes it: the Flatpak camera portal and PipeWire
have been reported to fail on I420-only loopback devices (OBS issue 13744). It costs ~1.3 ms
more per 720p frame than pyvirtualcam's I420 path; choose I420 (``--v4l2-format I420``) for
apps that read the device directly, if that matters.

pyfakewebcam 0.1.0 is the design card's package, but its frame path cannot be used as is: it
calls the ndarray method ``tostring``, removed in NumPy 2.3; it packs YUYV in a Python loop over
rows; and its colours depend on whether cv2 imports (full-range JPEG YCbCr or analog YUV,
point-sampled chroma). See ``_fakewebcam_class`` for the shim that keeps its device set-up and
replaces the rest.

Before any backend touches the device, holocam opens it, checks QUERYCAP (driver "v4l2 loopback",
OUTPUT capability) and afterwards reads the format back with VIDIOC_G_FMT: v4l2loopback silently
keeps an older format while a consumer holds the device, and neither library checks that.
The path need not be a character device (tests use a regular file on a FUSE fake); QUERYCAP
decides what the device is.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import re
from typing import Any, Protocol

import numpy as np

from capture_sink import v4l2_ioctl as ioctl
from capture_sink.outputs import v4l2_module
from capture_sink.outputs.base import Output, register_output
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.yuv import BgrToYuyv, frame_bytes, make_converter

logger = logging.getLogger(__name__)

DEFAULT_DEVICE = "/dev/video20"
DEFAULT_BACKEND = "pyvirtualcam"
BACKENDS = ("pyvirtualcam", "pyfakewebcam", "fcntl")
DEFAULT_PIXEL_FORMAT = "YUYV"
_PIP = {"pyvirtualcam": "pyvirtualcam==0.15.0", "pyfakewebcam": "pyfakewebcam==0.1.0"}


def _modprobe_hint(device: str) -> str:
    match = re.search(r"video(\d+)$", device)
    number = match.group(1) if match else "20"
    return (
        f'sudo modprobe v4l2loopback devices=1 video_nr={number} card_label="holocam" exclusive_caps=1'
    )


def _missing_package(backend: str) -> OutputError:
    others = ", ".join(repr(b) for b in BACKENDS if b != backend)
    return OutputError(
        f"v4l2 backend {backend!r} is not installed: pip install {_PIP[backend]} "
        f"(or pip install 'holocam[v4l2]'), or choose backend {others}"
    )


def available_backends() -> dict[str, bool]:
    """Which backends can be chosen here (their package is installed); imports nothing."""
    return {name: name == "fcntl" or importlib.util.find_spec(name) is not None for name in BACKENDS}


def open_loopback(device: str) -> int:
    """Open ``device`` for writing and check it is a v4l2loopback output; return the fd.

    Raises OutputError with the fix for: missing node, permission denied, a node without
    a driver, a device that is not V4L2 or not v4l2loopback, and a loopback device that
    another producer is already writing to.
    """
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OutputError(f"no {device}: load v4l2loopback: {_modprobe_hint(device)}") from None
    except PermissionError:
        raise OutputError(
            f"permission denied opening {device}: add your user to the video group "
            f"(sudo usermod -aG video $USER, then log out and in; in Docker: --group-add $(stat -c %g {device}))"
        ) from None
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENODEV):
            raise OutputError(
                f"no driver behind {device} ({e.strerror}): load v4l2loopback: {_modprobe_hint(device)}"
            ) from None
        if e.errno == errno.EBUSY:
            raise OutputError(f"{device} is busy: close the program writing to it, or use another device") from None
        raise OutputError(f"cannot open {device}: {e.strerror}") from None
    try:
        caps = ioctl.query_caps(fd)
    except OSError as e:
        os.close(fd)
        raise OutputError(
            f"{device} is not a V4L2 device (VIDIOC_QUERYCAP: {e.strerror}): give the v4l2loopback node "
            f"(v4l2-ctl --list-devices lists it), or load it: {_modprobe_hint(device)}"
        ) from None
    if not caps.is_loopback:
        os.close(fd)
        raise OutputError(
            f"{device} is {caps.card!r} (driver {caps.driver!r}), not a v4l2loopback device: give the loopback "
            f"node (v4l2-ctl --list-devices lists it), or load it: {_modprobe_hint(device)}"
        )
    if not caps.can_output:
        os.close(fd)
        if v4l2_module.keeps_capture_only_after_close(v4l2_module.SYS_ROOT):
            raise OutputError(
                f"{device} accepts no output: another program is writing to it, or v4l2loopback 0.12.5-0.12.7 "
                f"left it capture-only after the last producer stopped: stop that program, or reload the "
                f"module (sudo modprobe -r v4l2loopback && {_modprobe_hint(device)}), or upgrade to 0.13.2+"
            )
        raise OutputError(
            f"{device} accepts no output: another program is already writing to it (with exclusive_caps=1 "
            f"it is capture-only while a producer runs): stop that program, or use another loopback device"
        )
    logger.info("I: %s is v4l2loopback %r", device, caps.card)
    return fd


def _locked_error(device: str, got: ioctl.PixFormat, want: str) -> OutputError:
    return OutputError(
        f"{device} is locked to {got.describe()} but holocam writes {want} (a running consumer keeps the "
        f"format it first got): close the apps using {device} or restart them after holocam, "
        f"or run holocam at {got.width}x{got.height}"
    )


def _matches(got: ioctl.PixFormat, width: int, height: int, pixel_format: str) -> bool:
    return (got.width, got.height, got.pixelformat) == (width, height, ioctl.PIXEL_FORMATS[pixel_format])


def verify_format(fd: int, device: str, width: int, height: int, pixel_format: str) -> ioctl.PixFormat:
    """Read the device's output format back (VIDIOC_G_FMT) and fail loudly unless it is what we write."""
    try:
        got = ioctl.get_output_format(fd)
    except OSError as e:
        raise OutputError(f"cannot read the format of {device} back (VIDIOC_G_FMT: {e.strerror})") from None
    want = f"{width}x{height} {pixel_format}"
    if not _matches(got, width, height, pixel_format):
        raise _locked_error(device, got, want)
    packed_line = width * 2 if pixel_format == "YUYV" else width
    if got.bytesperline not in (0, packed_line) or got.sizeimage < frame_bytes(pixel_format, width, height):
        raise OutputError(
            f"{device} wants {got.bytesperline} bytes per line and {got.sizeimage}-byte frames for {want}, "
            f"holocam writes packed lines of {packed_line} bytes: use a v4l2loopback device "
            f"(this driver pads its lines)"
        )
    return got


class _Backend(Protocol):
    pixel_format: str

    def write(self, frame_bgr: np.ndarray) -> None: ...

    def close(self) -> None: ...


def _write_all(fd: int, data: np.ndarray, device: str) -> None:
    # One write() is one frame for v4l2loopback, so a short write cannot be completed later.
    try:
        written = os.write(fd, data)
    except OSError as e:
        raise OutputError(
            f"writing to {device} failed ({e.strerror}): is v4l2loopback still loaded? {_modprobe_hint(device)}"
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
                f"is it a v4l2loopback device? {_modprobe_hint(device)}"
            ) from None

    def write(self, frame_bgr: np.ndarray) -> None:
        _write_all(self._fd, self._convert(frame_bgr), self._device)

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

    def close(self) -> None:
        self._cam.close()


@register_output
class V4L2Output(Output):
    """Writes frames to a v4l2loopback device.

    Args:
        width, height, fps: the frame size written and the rate announced to consumers.
        device: the loopback node, e.g. ``/dev/video20``.
        backend: ``"pyvirtualcam"`` (default), ``"pyfakewebcam"`` or ``"fcntl"`` (see the module docstring).
        pixel_format: ``"YUYV"`` (default, what every consumer takes) or ``"I420"``.

    Raises:
        OutputError: the device is missing, not accessible, not v4l2loopback, busy with another
            producer, or locked to another format by a consumer.
    """

    KEY = "v4l2"

    def __init__(
        self,
        *,
        width: int,
        height: int,
        fps: float,
        device: str = DEFAULT_DEVICE,
        backend: str = DEFAULT_BACKEND,
        pixel_format: str | None = None,
    ) -> None:
        super().__init__(width=width, height=height, fps=fps)
        if backend not in BACKENDS:
            raise OutputError(f"unknown v4l2 backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        pixel_format = pixel_format or DEFAULT_PIXEL_FORMAT
        if pixel_format not in ioctl.PIXEL_FORMATS:
            raise OutputError(f"unknown pixel format {pixel_format!r}: choose one of {', '.join(ioctl.PIXEL_FORMATS)}")
        if backend == "pyfakewebcam" and pixel_format != "YUYV":
            raise OutputError(
                "the pyfakewebcam backend writes YUYV only: use pixel_format='YUYV' or backend 'pyvirtualcam'"
            )
        if width % 2 or (pixel_format == "I420" and height % 2):
            raise OutputError(f"{pixel_format} needs an even width{' and height' if pixel_format == 'I420' else ''} "
                              f"(Chrome also refuses odd widths): got {width}x{height}, choose an even size")
        self.device = device
        self.backend = backend
        self.pixel_format = pixel_format
        self._fd = open_loopback(device)
        try:
            try:
                self._backend = self._open_backend()
            except OutputError:
                self._explain_refused_format()
                raise
            self.accepted_format = verify_format(self._fd, device, self.width, self.height, pixel_format)
        except BaseException:
            backend_obj: Any = getattr(self, "_backend", None)
            if backend_obj is not None:
                backend_obj.close()
            os.close(self._fd)
            raise
        self._announce_fps()
        logger.info("I: writing %s to %s with %s at %.3g fps", self.accepted_format.describe(), device, backend, fps)

    def _open_backend(self) -> _Backend:
        if self.backend == "fcntl":
            return _FcntlBackend(self._fd, self.device, self.width, self.height, self.pixel_format)
        if self.backend == "pyfakewebcam":
            return _PyFakeWebcamBackend(self.device, self.width, self.height, self.pixel_format)
        return _PyVirtualCamBackend(self.device, self.width, self.height, self.fps, self.pixel_format)

    def _explain_refused_format(self) -> None:
        # v4l2loopback 0.13 refuses (EBUSY) a format other than the one a consumer holds, where
        # 0.12 and 0.14+ answer the held one; either way the user needs the same "locked to" line.
        try:
            got = ioctl.get_output_format(self._fd)
        except OSError:
            return
        if not _matches(got, self.width, self.height, self.pixel_format):
            raise _locked_error(self.device, got, f"{self.width}x{self.height} {self.pixel_format}") from None

    def _announce_fps(self) -> None:
        # Consumers read the frame interval from the device (v4l2loopback defaults to 30 fps);
        # neither library sets it. Failing here is harmless, so it is only logged.
        try:
            num, den = ioctl.set_output_fps(self._fd, self.fps)
            logger.debug("D: %s announces %d/%d s per frame", self.device, num, den)
        except OSError as e:
            logger.warning("W: %s did not take the frame rate %.3g (VIDIOC_S_PARM: %s)",
                           self.device, self.fps, e.strerror)

    def write(self, frame_bgr: np.ndarray) -> None:
        """Convert one BGR frame to the device's pixel format and write it."""
        self._check_frame(frame_bgr)
        self._backend.write(frame_bgr)
        self.frames_written += 1

    def _close(self) -> None:
        try:
            self._backend.close()
        finally:
            try:
                self._leave_output_open_for_the_next_producer()
            finally:
                os.close(self._fd)

    def _leave_output_open_for_the_next_producer(self) -> None:
        # v4l2loopback 0.12.5-0.12.7 clears "ready for output" at a write() but sets it again only
        # when an opener that called STREAMON closes: without this, the device stays capture-only
        # and the next holocam is refused until the module is reloaded (OBS does the same).
        if self.frames_written and v4l2_module.keeps_capture_only_after_close(v4l2_module.SYS_ROOT):
            try:
                ioctl.stream_on_output(self._fd)
            except OSError as e:
                logger.warning("W: %s may stay capture-only (VIDIOC_STREAMON: %s): %s", self.device, e.strerror,
                               v4l2_module.RELOAD)
