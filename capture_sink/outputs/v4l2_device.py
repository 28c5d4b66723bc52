"""The v4l2loopback device itself: open it and check what it is (QUERYCAP), and read back the
format it holds (G_FMT), with one-line errors naming the fix. Used by the output and by doctor."""

from __future__ import annotations

import errno
import logging
import os

from capture_sink import v4l2_ioctl as ioctl
from capture_sink.outputs import v4l2_module
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.v4l2_module import modprobe_line
from capture_sink.outputs.yuv import frame_bytes

logger = logging.getLogger("capture_sink.outputs.v4l2")


def open_loopback(device: str) -> int:
    """Open ``device`` for writing and check it is a v4l2loopback output; return the fd.

    Raises OutputError with the fix for: missing node, permission denied, a node without
    a driver, a device that is not V4L2 or not v4l2loopback, and a loopback device that
    another producer is already writing to.
    """
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OutputError(f"no {device}: load v4l2loopback: {modprobe_line(device)}") from None
    except PermissionError:
        raise OutputError(
            f"permission denied opening {device}: add your user to the video group "
            f"(sudo usermod -aG video $USER, then log out and in; in Docker: --group-add $(stat -c %g {device}))"
        ) from None
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENODEV):
            raise OutputError(
                f"no driver behind {device} ({e.strerror}): load v4l2loopback: {modprobe_line(device)}"
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
            f"(v4l2-ctl --list-devices lists it), or load it: {modprobe_line(device)}"
        ) from None
    if not caps.is_loopback:
        os.close(fd)
        raise OutputError(
            f"{device} is {caps.card!r} (driver {caps.driver!r}), not a v4l2loopback device: give the loopback "
            f"node (v4l2-ctl --list-devices lists it), or load it: {modprobe_line(device)}"
        )
    if not caps.can_output:
        os.close(fd)
        if v4l2_module.keeps_capture_only_after_close(v4l2_module.SYS_ROOT):
            raise OutputError(
                f"{device} accepts no output: another program is writing to it, or v4l2loopback 0.12.5-0.12.7 "
                f"left it capture-only after the last producer stopped: stop that program, or reload the "
                f"module (sudo modprobe -r v4l2loopback && {modprobe_line(device)}), or upgrade to 0.13.2+"
            )
        raise OutputError(
            f"{device} accepts no output: another program is already writing to it (with exclusive_caps=1 "
            f"it is capture-only while a producer runs): stop that program, or use another loopback device"
        )
    logger.info("I: %s is v4l2loopback %r", device, caps.card)
    return fd


def locked_error(device: str, got: ioctl.PixFormat, want: str) -> OutputError:
    return OutputError(
        f"{device} is locked to {got.describe()} but holocam writes {want} (a running consumer keeps the "
        f"format it first got): close the apps using {device} or restart them after holocam, "
        f"or run holocam at {got.width}x{got.height}"
    )


def matches(got: ioctl.PixFormat, width: int, height: int, pixel_format: str) -> bool:
    return (got.width, got.height, got.pixelformat) == (width, height, ioctl.PIXEL_FORMATS[pixel_format])


def verify_format(fd: int, device: str, width: int, height: int, pixel_format: str) -> ioctl.PixFormat:
    """Read the device's output format back (VIDIOC_G_FMT) and fail loudly unless it is what we write."""
    try:
        got = ioctl.get_output_format(fd)
    except OSError as e:
        raise OutputError(f"cannot read the format of {device} back (VIDIOC_G_FMT: {e.strerror})") from None
    want = f"{width}x{height} {pixel_format}"
    if not matches(got, width, height, pixel_format):
        raise locked_error(device, got, want)
    packed_line = width * 2 if pixel_format == "YUYV" else width
    if got.bytesperline not in (0, packed_line) or got.sizeimage < frame_bytes(pixel_format, width, height):
        raise OutputError(
            f"{device} wants {got.bytesperline} bytes per line and {got.sizeimage}-byte frames for {want}, "
            f"holocam writes packed lines of {packed_line} bytes: use a v4l2loopback device "
            f"(this driver pads its lines)"
        )
    return got
