#!/usr/bin/env python3
"""A fake v4l2loopback device over FUSE, so writers can be tested without the kernel module.

    python tests/fakes/fake_v4l2loopback.py MOUNTPOINT RECORDFILE [--lock-format 640x480:YUYV]

Serves MOUNTPOINT/video20, a *regular file* (a char-device node on FUSE never reaches the server:
`nodev` gives EACCES, `-o dev` sends open() to the kernel's chrdev table). The kernel forwards
ioctls on FUSE regular files in restricted mode, sizing the buffers from _IOC_SIZE, which is
enough for QUERYCAP, G_FMT, S_FMT, TRY_FMT, G_PARM and S_PARM.

Emulates v4l2loopback 0.12.7 loaded with exclusive_caps=1, from its source:
- QUERYCAP: driver "v4l2 loopback"; OUTPUT while no producer writes, CAPTURE once a producer has
  written (capabilities = device_caps | DEVICE_CAPS);
- S_FMT/TRY_FMT (output): clamps the size, unknown fourcc -> the first format (BGR4), FIELD -> NONE,
  computes bytesperline/sizeimage, forces colorspace SRGB; S_FMT page-aligns sizeimage;
- after the first write the format is locked (S_FMT answers the current format, silently) until
  the last opener closes; ``--lock-format`` simulates a consumer that holds a format all along.

Every written byte is stored in RECORDFILE: each open() appends at the record's end, then the
bytes go to that base + the write's offset (FUSE splits one write() into several requests; a real
v4l2loopback takes one write() as one frame). RECORDFILE.log gets one JSON line per open, ioctl
and release. Run it in its own process: a writer holding the GIL in open() (pyvirtualcam) would
deadlock an in-process server.

Needs fusepy and libfuse2 (Debian: apt-get install libfuse2), /dev/fuse and mount rights (root).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import stat
import struct
import sys
import time
from typing import Any

from fuse import FUSE, FuseOSError, Operations

_IOC_READ, _IOC_WRITE = 2, 1
V4L2_TYPE = ord("V")
NR_QUERYCAP, NR_G_FMT, NR_S_FMT, NR_G_PARM, NR_S_PARM, NR_TRY_FMT = 0, 4, 5, 21, 22, 64

BUF_TYPE_VIDEO_CAPTURE, BUF_TYPE_VIDEO_OUTPUT = 1, 2
FIELD_ANY, FIELD_NONE = 0, 1
COLORSPACE_SRGB = 8
CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT = 0x1, 0x2
CAP_READWRITE, CAP_STREAMING, CAP_DEVICE_CAPS = 0x01000000, 0x04000000, 0x80000000
PAGE_SIZE = 4096
MAX_SIZE = 8192
LOOPBACK_VERSION = (0 << 16) | (12 << 8) | 7

# (bits per pixel, planar) of the formats v4l2loopback 0.12.7 lists; the first is its fallback.
FORMATS: dict[str, tuple[int, bool]] = {
    "BGR4": (32, False), "RGB4": (32, False), "BGR3": (24, False), "RGB3": (24, False),
    "YUYV": (16, False), "UYVY": (16, False), "YVYU": (16, False), "RGBP": (16, False),
    "GREY": (8, False), "YU12": (12, True), "YV12": (12, True), "NV12": (12, True),
}
PIX_FIELDS = ("width", "height", "pixelformat", "field", "bytesperline", "sizeimage",
              "colorspace", "priv", "flags", "ycbcr_enc", "quantization", "xfer_func")
PIX = struct.Struct("<12I")  # struct v4l2_pix_format, 48 bytes
UNION_SIZE = 200  # the fmt union of struct v4l2_format and the parm union of v4l2_streamparm


def fourcc(code: str) -> int:
    return int.from_bytes(code.encode("ascii"), "little")


def fourcc_name(value: int) -> str:
    return value.to_bytes(4, "little").decode("ascii", "replace")


def page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE


def sized_format(width: int, height: int, code: str) -> dict[str, int]:
    """bytesperline/sizeimage as v4l2loopback's pix_format_set_size computes them."""
    depth, planar = FORMATS[code]
    bytesperline = width if planar else width * depth // 8
    sizeimage = width * height * depth // 8 if planar else bytesperline * height
    return {"width": width, "height": height, "pixelformat": fourcc(code), "field": FIELD_NONE,
            "bytesperline": bytesperline, "sizeimage": sizeimage, "colorspace": COLORSPACE_SRGB,
            "priv": 0, "flags": 0, "ycbcr_enc": 0, "quantization": 0, "xfer_func": 0}


class FakeLoopback(Operations):
    """One v4l2loopback device with exclusive_caps=1, as a FUSE regular file."""

    use_ns = True  # fusepy: nanosecond times, and no DeprecationWarning

    def __init__(self, record_path: str, device_name: str, driver: str, card: str,
                 locked_format: tuple[int, int, str] | None, open_errno: int | None) -> None:
        self.device_path = "/" + device_name
        self.driver, self.card = driver, card
        self.open_errno = open_errno
        self.record_fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.log = open(record_path + ".log", "w", buffering=1)
        self.record_end = 0
        self.next_fh = 1
        self.open_bases: dict[int, int] = {}  # fh -> record offset of that open's byte 0
        self.writers: set[int] = set()
        self.ready_for_capture = False  # True once a producer wrote: the format is locked
        self.ready_for_output = True
        self.timeperframe = (1, 30)
        self.pix = sized_format(640, 480, "YUYV")
        self.pix["sizeimage"] = page_align(self.pix["sizeimage"])
        self.consumer_holds = locked_format is not None
        if locked_format is not None:
            width, height, code = locked_format
            self.pix = sized_format(width, height, code)
            self.pix["sizeimage"] = page_align(self.pix["sizeimage"])
            self.ready_for_capture = True
        self.now = time.time_ns()

    # -- files -------------------------------------------------------------------------------

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        times = {"st_atime": self.now, "st_mtime": self.now, "st_ctime": self.now}
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, **times}
        if path == self.device_path:
            return {"st_mode": stat.S_IFREG | 0o666, "st_nlink": 1, "st_size": 0, **times}
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", self.device_path[1:]]

    def open(self, path: str, flags: int) -> int:
        if path != self.device_path:
            raise FuseOSError(errno.ENOENT)
        if self.open_errno is not None:
            raise FuseOSError(self.open_errno)
        fh = self.next_fh
        self.next_fh += 1
        self.open_bases[fh] = self.record_end
        self._event("open", fh=fh, flags=flags)
        return fh

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        pass  # writers open with O_WRONLY only; accept O_TRUNC all the same

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        position = self.open_bases[fh] + offset
        os.pwrite(self.record_fd, data, position)
        self.record_end = max(self.record_end, position + len(data))
        if fh not in self.writers:
            self.writers.add(fh)
            self._event("first_write", fh=fh)
        self.ready_for_capture = True  # the format is now locked
        self.ready_for_output = False  # exclusive_caps: capture-only while this producer is attached
        return len(data)

    def release(self, path: str, fh: int) -> int:
        self.open_bases.pop(fh, None)
        if fh in self.writers:
            self.writers.discard(fh)
            self.ready_for_output = True
        if not self.open_bases and not self.consumer_holds:
            self.ready_for_capture = False  # last opener gone: the format is free again
        self._event("release", fh=fh)
        return 0

    # -- ioctl -------------------------------------------------------------------------------

    def ioctl(self, path: str, cmd: int, arg: int, fh: int, flags: int, data: int) -> int:
        direction, size = cmd >> 30, (cmd >> 16) & 0x3FFF
        kind, nr = (cmd >> 8) & 0xFF, cmd & 0xFF
        request = ctypes.string_at(data, size) if direction & _IOC_WRITE and data else b""
        if kind != V4L2_TYPE:
            raise FuseOSError(errno.ENOTTY)
        if nr == NR_QUERYCAP and direction == _IOC_READ and size == 104:
            answer = self._querycap()
        elif nr in (NR_G_FMT, NR_S_FMT, NR_TRY_FMT) and direction == _IOC_READ | _IOC_WRITE and size > UNION_SIZE:
            answer = self._format_ioctl(nr, request, fh)
        elif nr in (NR_G_PARM, NR_S_PARM) and direction == _IOC_READ | _IOC_WRITE and size == 4 + UNION_SIZE:
            answer = self._parm_ioctl(nr, request)
        else:
            self._event("ioctl", nr=nr, size=size, error="ENOTTY")
            raise FuseOSError(errno.ENOTTY)
        ctypes.memmove(data, answer, size)
        return 0

    def _querycap(self) -> bytes:
        if self.driver == "v4l2 loopback":
            device_caps = CAP_READWRITE | CAP_STREAMING
            device_caps |= CAP_VIDEO_CAPTURE if self.ready_for_capture else 0
            device_caps |= CAP_VIDEO_OUTPUT if self.ready_for_output else 0
        else:  # pretend to be a webcam
            device_caps = CAP_VIDEO_CAPTURE | CAP_READWRITE | CAP_STREAMING
        self._event("ioctl", name="QUERYCAP", device_caps=device_caps)
        return struct.pack("<16s32s32sIII3I", self.driver.encode(), self.card.encode(),
                           b"platform:v4l2loopback-000", LOOPBACK_VERSION,
                           device_caps | CAP_DEVICE_CAPS, device_caps, 0, 0, 0)

    def _format_ioctl(self, nr: int, request: bytes, fh: int) -> bytes:
        pix_offset = len(request) - UNION_SIZE  # 8 on 64-bit (pointer-aligned union), 4 on 32-bit
        (buf_type,) = struct.unpack_from("<I", request, 0)
        asked = dict(zip(PIX_FIELDS, PIX.unpack_from(request, pix_offset)))
        name = {NR_G_FMT: "G_FMT", NR_S_FMT: "S_FMT", NR_TRY_FMT: "TRY_FMT"}[nr]
        if buf_type not in (BUF_TYPE_VIDEO_OUTPUT, BUF_TYPE_VIDEO_CAPTURE) or (
            nr != NR_G_FMT and buf_type != BUF_TYPE_VIDEO_OUTPUT
        ):
            self._event("ioctl", name=name, type=buf_type, error="EINVAL")
            raise FuseOSError(errno.EINVAL)
        if nr == NR_G_FMT:
            answer = dict(self.pix)
        else:
            answer = self._try_format(asked)
            if nr == NR_S_FMT and not self.ready_for_capture:
                answer["sizeimage"] = page_align(answer["sizeimage"])
                self.pix = dict(answer)
        self._event("ioctl", name=name, fh=fh, request=_readable(asked) if nr != NR_G_FMT else None,
                    answer=_readable(answer), locked=self.ready_for_capture)
        out = bytearray(request)
        PIX.pack_into(out, pix_offset, *(answer[field] for field in PIX_FIELDS))
        return bytes(out)

    def _try_format(self, asked: dict[str, int]) -> dict[str, int]:
        if self.ready_for_capture:
            return dict(self.pix)  # locked: v4l2loopback answers the current format, without error
        width = min(max(asked["width"], 2), MAX_SIZE) if asked["width"] else self.pix["width"]
        height = min(max(asked["height"], 2), MAX_SIZE) if asked["height"] else self.pix["height"]
        code = fourcc_name(asked["pixelformat"])
        if code not in FORMATS:
            code = next(iter(FORMATS))
        return sized_format(width, height, code)

    def _parm_ioctl(self, nr: int, request: bytes) -> bytes:
        (buf_type,) = struct.unpack_from("<I", request, 0)
        if buf_type not in (BUF_TYPE_VIDEO_OUTPUT, BUF_TYPE_VIDEO_CAPTURE):
            raise FuseOSError(errno.EINVAL)
        if nr == NR_S_PARM:
            numerator, denominator = struct.unpack_from("<II", request, 4 + 8)
            if numerator and denominator:
                self.timeperframe = (numerator, denominator)
        self._event("ioctl", name="S_PARM" if nr == NR_S_PARM else "G_PARM", timeperframe=list(self.timeperframe))
        out = bytearray(4 + UNION_SIZE)
        # capability V4L2_CAP_TIMEPERFRAME (0x1000), outputmode 0, timeperframe, writebuffers
        struct.pack_into("<IIIIII", out, 0, buf_type, 0x1000, 0, *self.timeperframe, 0)
        return bytes(out)

    def _event(self, op: str, **fields: Any) -> None:
        self.log.write(json.dumps({"op": op, **fields}) + "\n")


def _readable(pix: dict[str, int]) -> dict[str, Any]:
    return {**pix, "pixelformat": fourcc_name(pix["pixelformat"])}


def parse_lock(text: str) -> tuple[int, int, str]:
    try:
        size, code = text.split(":")
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH:FOURCC, e.g. 640x480:YUYV, got {text!r}") from None
    if code not in FORMATS:
        raise argparse.ArgumentTypeError(f"unknown fourcc {code!r}: one of {', '.join(FORMATS)}")
    return width, height, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mountpoint")
    parser.add_argument("record", help="file that receives every byte written to the device")
    parser.add_argument("--lock-format", type=parse_lock, metavar="WxH:FOURCC",
                        help="simulate a consumer that holds this format (S_FMT cannot change it)")
    parser.add_argument("--device-name", default="video20")
    parser.add_argument("--driver", default="v4l2 loopback", help="QUERYCAP driver (another value: a webcam)")
    parser.add_argument("--card", default="holocam")
    parser.add_argument("--open-error", choices=["EACCES", "EBUSY", "ENXIO"],
                        help="make open() fail with this errno")
    args = parser.parse_args(argv)
    operations = FakeLoopback(
        record_path=os.path.abspath(args.record), device_name=args.device_name, driver=args.driver,
        card=args.card, locked_format=args.lock_format,
        open_errno=getattr(errno, args.open_error) if args.open_error else None,
    )
    # nothreads: one request at a time keeps the device state simple; direct_io: every write()
    # reaches the server (no page cache), like a character device.
    FUSE(operations, args.mountpoint, foreground=True, nothreads=True, direct_io=True,
         fsname="fake_v4l2loopback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
