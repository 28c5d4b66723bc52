#!/usr/bin/env python3
"""A fake v4l2loopback device over FUSE, so writers can be tested without the kernel module.

    python tests/fakes/fake_v4l2loopback.py MOUNTPOINT RECORDFILE [--version 0.15.4]
        [--lock-format 640x480:YUYV] [--exclusive-caps 1]

Serves MOUNTPOINT/video20, a *regular file* (a char-device node on FUSE never reaches the server:
`nodev` gives EACCES, `-o dev` sends open() to the kernel's chrdev table). The kernel forwards
ioctls on FUSE regular files in restricted mode, sizing the buffers from _IOC_SIZE, which is
enough for QUERYCAP, G_FMT, S_FMT, TRY_FMT, G_PARM and S_PARM.

Emulates what a write()-based producer meets in the driver, per release (read in
v4l2loopback.c of each tag; FUSE gives each open() its own fh, so the per-opener state is real):

==============  ==============================================================================
rules           what the fake enforces (exclusive_caps=1; with 0 QUERYCAP says CAPTURE|OUTPUT)
==============  ==============================================================================
0.12 (5..7)     QUERYCAP: OUTPUT until the first write(), CAPTURE once written. The format locks
                at the first write until the last opener closes; S_FMT then answers the current
                format without error. An unknown fourcc becomes the first format (BGR4). write()
                never marks its opener a writer, so closing it does *not* bring OUTPUT back: a
                restarted producer is refused until the module is reloaded (OBS issue 7078),
                unless an opener called STREAMON(OUTPUT) first (that one does restore it).
0.13.x          as 0.12, except: S_FMT asking another size/fourcc while the format is fixed
                fails with EBUSY (TRY_FMT answers the current one); an unknown fourcc is EINVAL;
                the first write() makes its opener *the* writer (CAPTURE only; OUTPUT again when
                it closes); a write() from any other opener meanwhile is EINVAL.
0.14 / 0.15     the token rules of PR 611: S_FMT(OUTPUT) takes the output format token, another
                opener's S_FMT(OUTPUT) is then EBUSY; the first write() takes the output stream
                token (QUERYCAP: CAPTURE only, until that opener closes); meanwhile G_FMT, S_FMT,
                S_PARM on OUTPUT from another opener are EINVAL and its write() is EBUSY. While
                any other opener holds a format token, TRY/S_FMT answer the current format.
                sizeimage is exact (0.12/0.13 page-align it on S_FMT).
==============  ==============================================================================

``--lock-format`` simulates a consumer (a browser) that holds a format all along: under 0.14 it
holds the capture format token; under 0.12/0.13 the format is fixed. Every written byte is stored
in RECORDFILE: each open() appends at the record's end, then the bytes go to that base + the
write's offset (FUSE splits one write() into several requests; a real v4l2loopback takes one
write() as one frame). RECORDFILE.log gets one JSON line per open, ioctl, write error and release.
Run it in its own process: a writer holding the GIL in open() (pyvirtualcam) would deadlock an
in-process server.

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
from dataclasses import dataclass
from typing import Any

from fuse import FUSE, FuseOSError, Operations

_IOC_READ, _IOC_WRITE = 2, 1
V4L2_TYPE = ord("V")
NR_QUERYCAP, NR_G_FMT, NR_S_FMT, NR_STREAMON, NR_G_PARM, NR_S_PARM, NR_TRY_FMT = 0, 4, 5, 18, 21, 22, 64

BUF_TYPE_VIDEO_CAPTURE, BUF_TYPE_VIDEO_OUTPUT = 1, 2
FIELD_ANY, FIELD_NONE = 0, 1
COLORSPACE_SRGB = 8
CAP_VIDEO_CAPTURE, CAP_VIDEO_OUTPUT = 0x1, 0x2
CAP_READWRITE, CAP_STREAMING, CAP_DEVICE_CAPS = 0x01000000, 0x04000000, 0x80000000
PAGE_SIZE = 4096
MIN_WIDTH, MIN_HEIGHT, MAX_SIZE = 2, 1, 8192
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480
TOKEN_CAPTURE, TOKEN_OUTPUT = 0x1, 0x2

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


def rules_of(version: tuple[int, int, int]) -> str:
    """Which rule set a release follows: "0.12", "0.13" or "0.14" (0.14 and 0.15 share them)."""
    if version < (0, 13, 0):
        return "0.12"
    return "0.13" if version < (0, 14, 0) else "0.14"


@dataclass
class Opener:
    """Per-open() state, as the driver keeps it in struct v4l2_loopback_opener."""

    base: int                 # record offset of this open's byte 0
    writer: bool = False      # 0.13: became the writer at its first write()
    format_token: int = 0     # 0.14: TOKEN_OUTPUT after S_FMT(OUTPUT) or the first write()
    stream_token: int = 0     # 0.14: TOKEN_OUTPUT once it streams (its first write())
    wrote: bool = False


class FakeLoopback(Operations):
    """One v4l2loopback device as a FUSE regular file, with the rules of one release."""

    use_ns = True  # fusepy: nanosecond times, and no DeprecationWarning

    def __init__(self, record_path: str, device_name: str, driver: str, card: str,
                 locked_format: tuple[int, int, str] | None, open_errno: int | None,
                 version: tuple[int, int, int] = (0, 15, 4), exclusive_caps: bool = True) -> None:
        self.device_path = "/" + device_name
        self.driver, self.card = driver, card
        self.open_errno = open_errno
        self.version, self.rules = version, rules_of(version)
        self.exclusive_caps = exclusive_caps
        self.record_fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.log = open(record_path + ".log", "w", buffering=1)
        self.record_end = 0
        self.next_fh = 1
        self.openers: dict[int, Opener] = {}
        # 0.12/0.13 device flags
        self.ready_for_capture = False  # a producer wrote: the format is fixed
        self.ready_for_output = True
        # 0.14 device tokens: a set bit is a free token
        self.format_tokens = self.stream_tokens = TOKEN_CAPTURE | TOKEN_OUTPUT
        self.timeperframe = (1, 30)
        self.pix = sized_format(DEFAULT_WIDTH, DEFAULT_HEIGHT, "YUYV")
        self.consumer_holds = locked_format is not None
        if locked_format is not None:
            width, height, code = locked_format
            self.pix = sized_format(width, height, code)
            self.ready_for_capture = True
            self.format_tokens &= ~TOKEN_CAPTURE  # the consumer's capture format token
            self.stream_tokens &= ~TOKEN_CAPTURE
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
        self.openers[fh] = Opener(base=self.record_end)
        self._event("open", fh=fh, flags=flags)
        return fh

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        pass  # writers open with O_WRONLY only; accept O_TRUNC all the same

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        opener = self.openers[fh]
        if not opener.wrote:
            refused = self._start_writing(opener)
            if refused:
                self._event("write", fh=fh, error=errno.errorcode[refused])
                raise FuseOSError(refused)
            opener.wrote = True
            self._event("first_write", fh=fh)
        position = opener.base + offset
        os.pwrite(self.record_fd, data, position)
        self.record_end = max(self.record_end, position + len(data))
        return len(data)

    def _start_writing(self, opener: Opener) -> int:
        """What the driver does at an opener's first write(); returns an errno to refuse it, or 0."""
        if self.rules == "0.12":
            self.ready_for_output = False  # and the opener is never marked a writer (the bug)
            self.ready_for_capture = True
            return 0
        if self.rules == "0.13":
            if not self.ready_for_output:
                return errno.EINVAL  # another opener is the writer
            opener.writer = True
            self.ready_for_output = False
            self.ready_for_capture = True
            return 0
        # 0.14 start_fileio(): buffers (the output format token), then STREAMON (the stream token)
        if opener.format_token & ~TOKEN_OUTPUT:
            return errno.EBUSY
        if not self.stream_tokens & TOKEN_OUTPUT:
            return errno.EBUSY
        if not opener.format_token:
            if not self.format_tokens & TOKEN_OUTPUT:
                return errno.EBUSY
            self._acquire_format(opener)
        opener.stream_token = TOKEN_OUTPUT
        self.stream_tokens &= ~TOKEN_OUTPUT
        return 0

    def release(self, path: str, fh: int) -> int:
        opener = self.openers.pop(fh, None)
        if opener is not None:
            if opener.writer:
                self.ready_for_output = True  # the writer left (0.12: only one that called STREAMON)
            self.format_tokens |= opener.format_token
            self.stream_tokens |= opener.stream_token
        if not self.openers and not self.consumer_holds:
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
        opener = self.openers[fh]
        if nr == NR_QUERYCAP and direction == _IOC_READ and size == 104:
            answer = self._querycap()
        elif nr in (NR_G_FMT, NR_S_FMT, NR_TRY_FMT) and direction == _IOC_READ | _IOC_WRITE and size > UNION_SIZE:
            answer = self._format_ioctl(nr, request, fh, opener)
        elif nr in (NR_G_PARM, NR_S_PARM) and direction == _IOC_READ | _IOC_WRITE and size == 4 + UNION_SIZE:
            answer = self._parm_ioctl(nr, request, opener)
        elif nr == NR_STREAMON and direction == _IOC_WRITE and size == 4:
            self._streamon(struct.unpack("<I", request)[0], opener)
            return 0
        else:
            self._event("ioctl", nr=nr, size=size, error="ENOTTY")
            raise FuseOSError(errno.ENOTTY)
        ctypes.memmove(data, answer, size)
        return 0

    def _streamon(self, buf_type: int, opener: Opener) -> None:
        """STREAMON(OUTPUT) without buffers: 0.12/0.13 make the opener a writer; 0.14 wants REQBUFS first."""
        if buf_type != BUF_TYPE_VIDEO_OUTPUT or self.rules == "0.14":
            raise self._fail("STREAMON", errno.EINVAL, type=buf_type)
        opener.writer = True
        self.ready_for_output = False
        self.ready_for_capture = True
        self._event("ioctl", name="STREAMON", type=buf_type)

    def _fail(self, name: str, code: int, **fields: Any) -> FuseOSError:
        self._event("ioctl", name=name, error=errno.errorcode[code], **fields)
        return FuseOSError(code)

    def _capabilities(self) -> int:
        if not self.exclusive_caps:
            return CAP_VIDEO_CAPTURE | CAP_VIDEO_OUTPUT
        if self.rules == "0.14":
            return CAP_VIDEO_OUTPUT if self.stream_tokens & TOKEN_OUTPUT else CAP_VIDEO_CAPTURE
        return (CAP_VIDEO_CAPTURE if self.ready_for_capture else 0) | (CAP_VIDEO_OUTPUT if self.ready_for_output else 0)

    def _querycap(self) -> bytes:
        if self.driver == "v4l2 loopback":
            device_caps = CAP_READWRITE | CAP_STREAMING | self._capabilities()
        else:  # pretend to be a webcam
            device_caps = CAP_VIDEO_CAPTURE | CAP_READWRITE | CAP_STREAMING
        self._event("ioctl", name="QUERYCAP", device_caps=device_caps)
        major, minor, patch = self.version
        return struct.pack("<16s32s32sIII3I", self.driver.encode(), self.card.encode(),
                           b"platform:v4l2loopback-000", (major << 16) | (minor << 8) | patch,
                           device_caps | CAP_DEVICE_CAPS, device_caps, 0, 0, 0)

    # 0.14 helpers, after check_buffer_capability() and the token macros of the driver
    def _may_use(self, opener: Opener, buf_type: int) -> bool:
        if not self.exclusive_caps:
            return buf_type in (BUF_TYPE_VIDEO_CAPTURE, BUF_TYPE_VIDEO_OUTPUT)
        if buf_type == BUF_TYPE_VIDEO_OUTPUT:
            return bool(opener.format_token & TOKEN_OUTPUT or self.stream_tokens & TOKEN_OUTPUT)
        if buf_type == BUF_TYPE_VIDEO_CAPTURE:
            return bool(opener.format_token & TOKEN_CAPTURE or not self.stream_tokens & TOKEN_OUTPUT)
        return False

    def _others_own_a_format(self, opener: Opener) -> bool:
        held = ~self.format_tokens & (TOKEN_CAPTURE | TOKEN_OUTPUT)
        return bool(held & ~opener.format_token)

    def _acquire_format(self, opener: Opener) -> None:
        opener.format_token = TOKEN_OUTPUT
        self.format_tokens &= ~TOKEN_OUTPUT

    def _fixed(self) -> bool:  # 0.12/0.13: V4L2LOOPBACK_IS_FIXED_FMT
        return self.ready_for_capture

    def _format_ioctl(self, nr: int, request: bytes, fh: int, opener: Opener) -> bytes:
        pix_offset = len(request) - UNION_SIZE  # 8 on 64-bit (pointer-aligned union), 4 on 32-bit
        (buf_type,) = struct.unpack_from("<I", request, 0)
        asked = dict(zip(PIX_FIELDS, PIX.unpack_from(request, pix_offset)))
        name = {NR_G_FMT: "G_FMT", NR_S_FMT: "S_FMT", NR_TRY_FMT: "TRY_FMT"}[nr]
        if buf_type not in (BUF_TYPE_VIDEO_OUTPUT, BUF_TYPE_VIDEO_CAPTURE) or (
            nr != NR_G_FMT and buf_type != BUF_TYPE_VIDEO_OUTPUT
        ):
            raise self._fail(name, errno.EINVAL, type=buf_type)
        if self.rules == "0.14" and not self._may_use(opener, buf_type):
            raise self._fail(name, errno.EINVAL, fh=fh, reason="another opener streams output")
        if nr == NR_G_FMT:
            answer = dict(self.pix)
        else:
            answer = self._negotiate(nr, asked, name, fh, opener)
        self._event("ioctl", name=name, fh=fh, request=_readable(asked) if nr != NR_G_FMT else None,
                    answer=_readable(answer))
        out = bytearray(request)
        PIX.pack_into(out, pix_offset, *(answer[field] for field in PIX_FIELDS))
        return bytes(out)

    def _negotiate(self, nr: int, asked: dict[str, int], name: str, fh: int, opener: Opener) -> dict[str, int]:
        """TRY_FMT / S_FMT on the output queue: the answer, or a raised errno."""
        code = fourcc_name(asked["pixelformat"])
        if code not in FORMATS:
            if self.rules != "0.12":
                raise self._fail(name, errno.EINVAL, fh=fh, reason=f"unknown fourcc {code!r}")
            code = next(iter(FORMATS))  # 0.12: falls back to the first format
        width = min(max(asked["width"] or DEFAULT_WIDTH, MIN_WIDTH), MAX_SIZE)
        height = min(max(asked["height"] or DEFAULT_HEIGHT, MIN_HEIGHT), MAX_SIZE)
        wanted = sized_format(width, height, code)
        same = all(wanted[k] == self.pix[k] for k in ("width", "height", "pixelformat"))
        if self.rules == "0.14":
            answer = dict(self.pix) if self._others_own_a_format(opener) else wanted
            if nr == NR_S_FMT:
                if opener.format_token:
                    self.format_tokens |= opener.format_token
                    opener.format_token = 0
                if not self.format_tokens & TOKEN_OUTPUT:
                    raise self._fail(name, errno.EBUSY, fh=fh, reason="another opener holds the output format")
                self.pix = dict(answer)
                self._acquire_format(opener)
            return answer
        if self._fixed():
            if nr == NR_S_FMT and self.rules == "0.13" and not same:
                raise self._fail(name, errno.EBUSY, fh=fh, reason="format fixed by a writer or reader")
            return dict(self.pix)  # 0.12 answers the fixed format without error; so does TRY_FMT
        if nr == NR_S_FMT:
            wanted["sizeimage"] = page_align(wanted["sizeimage"])
            self.pix = dict(wanted)
        return wanted

    def _parm_ioctl(self, nr: int, request: bytes, opener: Opener) -> bytes:
        (buf_type,) = struct.unpack_from("<I", request, 0)
        name = "S_PARM" if nr == NR_S_PARM else "G_PARM"
        if buf_type not in (BUF_TYPE_VIDEO_OUTPUT, BUF_TYPE_VIDEO_CAPTURE):
            raise self._fail(name, errno.EINVAL, type=buf_type)
        if self.rules == "0.14" and not self._may_use(opener, buf_type):
            raise self._fail(name, errno.EINVAL, reason="another opener streams output")
        if nr == NR_S_PARM:
            numerator, denominator = struct.unpack_from("<II", request, 4 + 8)
            if numerator and denominator:
                self.timeperframe = (numerator, denominator)
            elif self.rules == "0.13":
                raise self._fail(name, errno.EINVAL, reason="zero frame interval")
        self._event("ioctl", name=name, timeperframe=list(self.timeperframe))
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


def parse_version(text: str) -> tuple[int, int, int]:
    try:
        major, minor, patch = (int(v) for v in text.split("."))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a release like 0.15.4, got {text!r}") from None
    return major, minor, patch


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
    parser.add_argument("--version", type=parse_version, default=(0, 15, 4),
                        help="v4l2loopback release whose rules to follow (default 0.15.4)")
    parser.add_argument("--exclusive-caps", type=int, choices=[0, 1], default=1)
    args = parser.parse_args(argv)
    operations = FakeLoopback(
        record_path=os.path.abspath(args.record), device_name=args.device_name, driver=args.driver,
        card=args.card, locked_format=args.lock_format,
        open_errno=getattr(errno, args.open_error) if args.open_error else None,
        version=args.version, exclusive_caps=bool(args.exclusive_caps),
    )
    # nothreads: one request at a time keeps the device state simple; direct_io: every write()
    # reaches the server (no page cache), like a character device.
    FUSE(operations, args.mountpoint, foreground=True, nothreads=True, direct_io=True,
         fsname="fake_v4l2loopback")
    return 0


if __name__ == "__main__":
    sys.exit(main())
