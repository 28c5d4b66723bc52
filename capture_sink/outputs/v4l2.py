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
have been reported to fail on I420-only loopback devices (OBS issue 13744). It costs a little
more per frame than pyvirtualcam's I420 path (docs/sink-performance.md); choose I420 (``--v4l2-format I420``) for
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

import logging
import os
from typing import Any

import numpy as np

from capture_sink import v4l2_ioctl as ioctl
from capture_sink.outputs import v4l2_module
from capture_sink.outputs.base import Output, register_output
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.v4l2_backends import (BACKENDS, _Backend, _fakewebcam_class, _FcntlBackend,
                                                _PyFakeWebcamBackend, _PyVirtualCamBackend)
from capture_sink.outputs.v4l2_device import locked_error, matches, open_loopback, verify_format

logger = logging.getLogger(__name__)

DEFAULT_DEVICE = "/dev/video20"
DEFAULT_BACKEND = "pyvirtualcam"
DEFAULT_PIXEL_FORMAT = "YUYV"


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
        if not matches(got, self.width, self.height, self.pixel_format):
            raise locked_error(self.device, got, f"{self.width}x{self.height} {self.pixel_format}") from None

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

    @property
    def takes_yuyv(self) -> bool:
        return self.pixel_format == "YUYV"

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        """Write one frame made as YUYV already (the sink's fused passes), as it is."""
        if not self.takes_yuyv:
            super().write_yuyv(frame_yuyv)
        self._check_frame(frame_yuyv, channels=2)
        self._backend.write_yuyv(frame_yuyv)
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
