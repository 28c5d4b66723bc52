"""The few V4L2 ioctls holocam needs, via ctypes + fcntl: one module for the loopback writer and `doctor`.

The writer (outputs/v4l2.py) uses QUERYCAP, G_FMT, S_FMT, S_PARM and STREAMON on the output
queue; `doctor` uses QUERYCAP, ENUM_FMT and ENUM_FRAMESIZES to see what a camera offers.

Struct layouts follow linux/videodev2.h. ``v4l2_format`` holds a union whose ``v4l2_window``
member contains pointers, so the union is pointer-aligned: 208 bytes on 64-bit, 204 on 32-bit;
the ioctl numbers encode that size, so they are computed from ``ctypes.sizeof``.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
from dataclasses import dataclass
from fractions import Fraction

logger = logging.getLogger(__name__)

V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_FRMSIZE_TYPE_DISCRETE = 1
V4L2_FIELD_NONE = 1
V4L2_COLORSPACE_SRGB = 8

V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_DEVICE_CAPS = 0x80000000

# The driver name v4l2loopback reports in QUERYCAP (pyvirtualcam checks the same string).
LOOPBACK_DRIVER = "v4l2 loopback"


def fourcc(code: str) -> int:
    """V4L2 pixel format code of a four-letter name ("YUYV" -> 0x56595559)."""
    a, b, c, d = (ord(ch) for ch in code)
    return a | (b << 8) | (c << 16) | (d << 24)


def fourcc_name(value: int) -> str:
    """Name of a V4L2 (or OpenCV) pixel format code: 0x56595559 -> "YUYV", "Y16 " -> "Y16".

    Trailing spaces and NULs are dropped, other unprintable bytes shown as '?'; 0 is "?".
    """
    chars = bytes((int(value) >> shift) & 0xFF for shift in (0, 8, 16, 24)).rstrip(b" \0")
    return "".join(chr(ch) if 32 <= ch < 127 else "?" for ch in chars) or "?"


# holocam's names for the formats it writes -> V4L2 fourcc (I420 is V4L2's "YU12").
PIXEL_FORMATS = {"YUYV": fourcc("YUYV"), "I420": fourcc("YU12")}


class V4L2Capability(ctypes.Structure):
    _fields_ = [
        ("driver", ctypes.c_char * 16),
        ("card", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("version", ctypes.c_uint32),
        ("capabilities", ctypes.c_uint32),
        ("device_caps", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 3),
    ]


_U32 = ctypes.c_uint32


class V4L2FmtDesc(ctypes.Structure):
    _fields_ = [("index", _U32), ("type", _U32), ("flags", _U32), ("description", ctypes.c_char * 32),
                ("pixelformat", _U32), ("mbus_code", _U32), ("reserved", _U32 * 3)]


class V4L2FrmSizeEnum(ctypes.Structure):
    # size: discrete (width, height); stepwise (min_w, max_w, step_w, min_h, max_h, step_h)
    _fields_ = [("index", _U32), ("pixel_format", _U32), ("type", _U32), ("size", _U32 * 6),
                ("reserved", _U32 * 2)]


class V4L2PixFormat(ctypes.Structure):
    _fields_ = [(name, _U32) for name in ("width", "height", "pixelformat", "field", "bytesperline", "sizeimage",
                                          "colorspace", "priv", "flags", "ycbcr_enc", "quantization", "xfer_func")]


class _V4L2FormatUnion(ctypes.Union):
    _fields_ = [
        ("pix", V4L2PixFormat),
        ("raw_data", ctypes.c_uint8 * 200),
        ("_pointer_alignment", ctypes.c_void_p),  # stands in for v4l2_window's pointers
    ]


class V4L2Format(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("fmt", _V4L2FormatUnion)]


class V4L2Fract(ctypes.Structure):
    _fields_ = [("numerator", ctypes.c_uint32), ("denominator", ctypes.c_uint32)]


class V4L2OutputParm(ctypes.Structure):
    _fields_ = [
        ("capability", ctypes.c_uint32),
        ("outputmode", ctypes.c_uint32),
        ("timeperframe", V4L2Fract),
        ("extendedmode", ctypes.c_uint32),
        ("writebuffers", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32 * 4),
    ]


class _V4L2StreamParmUnion(ctypes.Union):
    _fields_ = [("output", V4L2OutputParm), ("raw_data", ctypes.c_uint8 * 200)]


class V4L2StreamParm(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("parm", _V4L2StreamParmUnion)]


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("V") << 8) | nr


_WRITE, _READ, _READ_WRITE = 1, 2, 3
VIDIOC_QUERYCAP = _ioc(_READ, 0, ctypes.sizeof(V4L2Capability))
VIDIOC_ENUM_FMT = _ioc(_READ_WRITE, 2, ctypes.sizeof(V4L2FmtDesc))
VIDIOC_G_FMT = _ioc(_READ_WRITE, 4, ctypes.sizeof(V4L2Format))
VIDIOC_S_FMT = _ioc(_READ_WRITE, 5, ctypes.sizeof(V4L2Format))
VIDIOC_S_PARM = _ioc(_READ_WRITE, 22, ctypes.sizeof(V4L2StreamParm))
VIDIOC_STREAMON = _ioc(_WRITE, 18, ctypes.sizeof(ctypes.c_int))
VIDIOC_ENUM_FRAMESIZES = _ioc(_READ_WRITE, 74, ctypes.sizeof(V4L2FrmSizeEnum))


@dataclass(frozen=True)
class DeviceCaps:
    """What QUERYCAP says about a device."""

    driver: str
    card: str
    caps: int  # device_caps where the driver reports them, else capabilities

    @property
    def is_loopback(self) -> bool:
        return self.driver == LOOPBACK_DRIVER

    @property
    def can_output(self) -> bool:
        return bool(self.caps & V4L2_CAP_VIDEO_OUTPUT)

    @property
    def can_capture(self) -> bool:
        return bool(self.caps & V4L2_CAP_VIDEO_CAPTURE)


@dataclass(frozen=True)
class PixFormat:
    """The part of a single-planar V4L2 format a writer cares about."""

    width: int
    height: int
    pixelformat: int
    bytesperline: int
    sizeimage: int
    colorspace: int

    @property
    def fourcc(self) -> str:
        return fourcc_name(self.pixelformat)

    def describe(self) -> str:
        """"1280x720 I420" for the formats holocam writes, else the raw fourcc ("640x480 BGR4")."""
        names = {code: name for name, code in PIXEL_FORMATS.items()}
        return f"{self.width}x{self.height} {names.get(self.pixelformat, self.fourcc)}"


def query_caps(fd: int) -> DeviceCaps:
    """VIDIOC_QUERYCAP; raises OSError (ENOTTY/EINVAL) on a device that is not V4L2."""
    cap = V4L2Capability()
    fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
    caps = cap.device_caps if cap.capabilities & V4L2_CAP_DEVICE_CAPS else cap.capabilities
    return DeviceCaps(
        driver=cap.driver.decode("utf-8", "replace"),
        card=cap.card.decode("utf-8", "replace"),
        caps=caps,
    )


def _pix_of(fmt: V4L2Format) -> PixFormat:
    pix = fmt.fmt.pix
    return PixFormat(pix.width, pix.height, pix.pixelformat, pix.bytesperline, pix.sizeimage, pix.colorspace)


def get_output_format(fd: int) -> PixFormat:
    """VIDIOC_G_FMT for the output queue: the format the device holds now."""
    fmt = V4L2Format()
    fmt.type = V4L2_BUF_TYPE_VIDEO_OUTPUT
    fcntl.ioctl(fd, VIDIOC_G_FMT, fmt)
    return _pix_of(fmt)


def set_output_format(fd: int, width: int, height: int, pixelformat: int) -> PixFormat:
    """VIDIOC_S_FMT for the output queue; returns the driver's answer (which may differ)."""
    fmt = V4L2Format()
    fmt.type = V4L2_BUF_TYPE_VIDEO_OUTPUT
    fmt.fmt.pix.width = width
    fmt.fmt.pix.height = height
    fmt.fmt.pix.pixelformat = pixelformat
    fmt.fmt.pix.field = V4L2_FIELD_NONE
    # bytesperline/sizeimage/colorspace are the driver's to fill (v4l2loopback computes them).
    fcntl.ioctl(fd, VIDIOC_S_FMT, fmt)
    return _pix_of(fmt)


def set_output_fps(fd: int, fps: float) -> tuple[int, int]:
    """VIDIOC_S_PARM: tell the device the frame interval consumers will see; returns it as (num, den)."""
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001, 30 -> 30/1
    parm = V4L2StreamParm()
    parm.type = V4L2_BUF_TYPE_VIDEO_OUTPUT
    parm.parm.output.timeperframe.numerator = rate.denominator
    parm.parm.output.timeperframe.denominator = rate.numerator
    fcntl.ioctl(fd, VIDIOC_S_PARM, parm)
    tpf = parm.parm.output.timeperframe
    return tpf.numerator, tpf.denominator


def stream_on_output(fd: int) -> None:
    """VIDIOC_STREAMON for the output queue (used only for v4l2loopback 0.12.5-0.12.7, see v4l2.py)."""
    fcntl.ioctl(fd, VIDIOC_STREAMON, ctypes.c_int(V4L2_BUF_TYPE_VIDEO_OUTPUT))


def capture_formats(fd: int) -> dict[str, tuple[int, int]]:
    """VIDIOC_ENUM_FMT + ENUM_FRAMESIZES of a camera: fourcc -> the largest frame size offered ((0, 0): any)."""
    formats: dict[str, tuple[int, int]] = {}
    for index in range(64):
        desc = V4L2FmtDesc(index=index, type=V4L2_BUF_TYPE_VIDEO_CAPTURE)
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FMT, desc)
        except OSError:
            break
        best = (0, 0)
        for size_index in range(256):
            size = V4L2FrmSizeEnum(index=size_index, pixel_format=desc.pixelformat)
            try:
                fcntl.ioctl(fd, VIDIOC_ENUM_FRAMESIZES, size)
            except OSError:
                break
            discrete = size.type == V4L2_FRMSIZE_TYPE_DISCRETE
            wh = (size.size[0], size.size[1]) if discrete else (size.size[1], size.size[4])
            best = max(best, wh, key=lambda s: s[0] * s[1])
            if not discrete:
                break
        formats[fourcc_name(desc.pixelformat)] = best
    return formats
