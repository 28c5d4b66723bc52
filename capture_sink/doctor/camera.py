"""Check 3: the camera opens, captures, and offers MJPG (cheap to decode) at the configured size."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from capture_sink import v4l2_ioctl
from capture_sink.sources import list_cameras

from .findings import FAIL, INFO, OK, WARN, Finding


def check_camera(source: str, *, device: str, width: int, height: int) -> list[Finding]:
    """The camera opens, captures, and offers MJPG at the configured size."""
    cameras = [c for c in list_cameras() if os.path.realpath(c) != os.path.realpath(device)]
    if source.isdigit():
        source = f"/dev/video{source}"
    if not (source.startswith("/dev/") or re.fullmatch(r"video\d+", Path(source).name)):
        what = "no camera found, the built-in demo is used" if source == "demo" and not cameras else f"source is {source}"
        return [Finding("camera", INFO, f"{what} (cameras here: {', '.join(cameras) or 'none'})")]
    try:
        fd = os.open(source, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return [Finding("camera", FAIL, f"{source} does not exist (cameras here: {', '.join(cameras) or 'none'})",
                        "plug the camera in, or pick one with --source (or --source demo)")]
    except PermissionError:
        return [Finding("camera", FAIL, f"permission denied opening {source}",
                        "sudo usermod -aG video $USER, then log out and in")]
    except OSError as exc:
        return [Finding("camera", FAIL, f"cannot open {source} ({exc.strerror})",
                        "close other apps using it, or pick another camera with --source")]
    try:
        try:
            caps = v4l2_ioctl.query_caps(fd)
        except OSError as exc:
            return [Finding("camera", FAIL, f"{source} is not a V4L2 device ({errno.errorcode.get(exc.errno, exc)})",
                            f"pick a camera with --source (cameras here: {', '.join(cameras) or 'none'})")]
        card = caps.card
        if not caps.can_capture:
            return [Finding("camera", FAIL, f"{source} ({card}) cannot capture",
                            f"pick the camera's capture node with --source (cameras here: {', '.join(cameras)})")]
        formats = v4l2_ioctl.capture_formats(fd)
    finally:
        os.close(fd)
    listed = ", ".join(f"{k} {w}x{h}" if w else k for k, (w, h) in formats.items()) or "none listed"
    mjpg = formats.get("MJPG")
    if mjpg is None:
        return [Finding("camera", WARN, f"{source} ({card}) offers no MJPG ({listed}): raw frames at "
                                        f"{width}x{height} may be slow or low-rate",
                        f"try --width 640 --height 480, or another camera")]
    if mjpg[0] and (mjpg[0] < width or mjpg[1] < height):
        return [Finding("camera", WARN, f"{source} ({card}) gives MJPG up to {mjpg[0]}x{mjpg[1]}, less than "
                                        f"{width}x{height}", f"run with --width {mjpg[0]} --height {mjpg[1]}")]
    return [Finding("camera", OK, f"{source} ({card}): {listed}")]
