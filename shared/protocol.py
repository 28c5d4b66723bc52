"""holocam's sink <-> segmenter protocol: versioned msgpack messages, validated field by field.

Wire layout. The sink's ROUTER sees `[identity, payload]`; a segmenter's DEALER sees `[payload]`.
`payload` is one msgpack map, always with exactly these keys (no more, no fewer):

    {"v": 2, "kind": "hello",     "model": str, "width": int, "height": int, "resize": "stretch"|"fit",
                                  "capacity": int, "replica_id": str, "heartbeat_ms": int,
                                  "device": str ("cpu", "cuda:0 fp16", ...)}                   segmenter -> sink
    {"v": 2, "kind": "request",   "seq": int, "capture_time": float, "width": int, "height": int,
                                  "channels": 3, "encoding": "raw"|"jpeg", "data": bin}        sink -> segmenter
    {"v": 2, "kind": "mask",      "seq": int, "width": int, "height": int, "encoding": "raw"|"png",
                                  "data": bin, "inference_ms": float, "replica_id": str}       segmenter -> sink
    {"v": 2, "kind": "heartbeat", "interval_ms": int}                                          both ways
    {"v": 2, "kind": "error",     "code": str, "message": str, "seq": int (-1: none)}          both ways
    {"v": 2, "kind": "goodbye",   "reason": str}                                               both ways

Frames are RGB uint8, row-major (h, w, 3): raw bytes (w*h*3 of them) or a JPEG. Masks are uint8
(h, w), raw (w*h bytes) or PNG (a segmenter answers PNG when the request came as JPEG: the link is
slow). A new or changed field means a new version: `decode` rejects unknown versions and unknown
keys rather than guessing. Every size is bounded (`MAX_SIDE`), a raw payload must be exactly
w*h*c bytes, and a JPEG/PNG header is read before decoding so a small file can never claim a huge
image. `MAX_REQUEST_BYTES` / `MAX_REPLY_BYTES` are the sockets' `zmq.MAXMSGSIZE`, so libzmq
refuses anything bigger before allocating it. (One job, about 400 lines: the wire format and
every check on it stay together, so no message reaches either service half-validated.)
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from typing import Union

import cv2
import msgpack
import numpy as np

from .geometry import RESIZE_MODES

PROTOCOL_VERSION = 2  # 2: hello says the replica's device

HELLO = "hello"
REQUEST = "request"
MASK = "mask"
HEARTBEAT = "heartbeat"
ERROR = "error"
GOODBYE = "goodbye"

# Error codes
ERR_BAD_REQUEST = "bad-request"        # the segmenter could not use a request (seq says which)
ERR_BUSY = "busy"                      # more requests than the announced capacity
ERR_DRAINING = "draining"              # the segmenter is shutting down; send no more
ERR_UNKNOWN_REPLICA = "unknown-replica"  # the sink does not know this peer: say hello again
ERR_REFUSED = "refused"                # the sink will not use this replica (other model/input size)
ERROR_CODES = (ERR_BAD_REQUEST, ERR_BUSY, ERR_DRAINING, ERR_UNKNOWN_REPLICA, ERR_REFUSED)

FRAME_ENCODINGS = ("raw", "jpeg")
MASK_ENCODINGS = ("raw", "png")

MAX_SIDE = 1024                 # model inputs are small (256, 320); frames are prepared before sending
MAX_FRAME_BYTES = MAX_SIDE * MAX_SIDE * 3
MAX_MASK_BYTES = MAX_SIDE * MAX_SIDE
MAX_TEXT = 256                  # replica ids, model names, error messages
MAX_CAPACITY = 64
MAX_SEQ = 2**63 - 1
MAX_INTERVAL_MS = 60_000
_ENVELOPE = 1024                # msgpack keys and small fields around the pixel bytes
MAX_REQUEST_BYTES = MAX_FRAME_BYTES + _ENVELOPE
MAX_REPLY_BYTES = MAX_MASK_BYTES + _ENVELOPE

JPEG_QUALITY = 90
PNG_COMPRESSION = 1             # masks are mostly 0 and 255: level 1 already shrinks them ~10x


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says which field and why."""


@dataclass(frozen=True, slots=True)
class Hello:
    model: str
    width: int
    height: int
    resize: str
    capacity: int
    replica_id: str
    heartbeat_ms: int
    device: str = "cpu"   # where the replica computes, e.g. "cpu", "cuda:0 fp16" (shown to users)


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    seq: int
    capture_time: float
    width: int
    height: int
    channels: int
    encoding: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MaskReply:
    seq: int
    width: int
    height: int
    encoding: str
    data: bytes
    inference_ms: float
    replica_id: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    interval_ms: int


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str
    seq: int = -1


@dataclass(frozen=True, slots=True)
class Goodbye:
    reason: str


Message = Union[Hello, SegmentRequest, MaskReply, Heartbeat, Error, Goodbye]

_KIND_OF: dict[type, str] = {Hello: HELLO, SegmentRequest: REQUEST, MaskReply: MASK,
                             Heartbeat: HEARTBEAT, Error: ERROR, Goodbye: GOODBYE}
_CLASS_OF: dict[str, type] = {kind: cls for cls, kind in _KIND_OF.items()}
_FIELDS_OF: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _KIND_OF}


# -- encode ------------------------------------------------------------------------------------

def encode(message: Message) -> bytes:
    """The wire bytes of a message (checked first: never send what `decode` would refuse)."""
    cls = type(message)
    if cls not in _KIND_OF:
        raise TypeError(f"not a protocol message: {cls.__name__}")
    body = {"v": PROTOCOL_VERSION, "kind": _KIND_OF[cls]}
    for name in _FIELDS_OF[cls]:
        body[name] = getattr(message, name)
    _validate(cls, body)
    return msgpack.packb(body, use_bin_type=True)


def encode_request(rgb: np.ndarray, seq: int, capture_time: float, *, encoding: str = "raw",
                   jpeg_quality: int = JPEG_QUALITY) -> bytes:
    """Wire bytes of a frame request for an RGB uint8 (h, w, 3) image.

    Args:
        rgb: the frame, already prepared for the model's input size.
        seq: frame number; masks come back under the same number.
        capture_time: when the frame was captured (time.monotonic() on the sink).
        encoding: "raw" (exact pixels, most bytes) or "jpeg" (for slow links).
        jpeg_quality: 1..100, for "jpeg".
    Returns:
        The msgpack payload.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ProtocolError(f"a frame must be uint8 (h, w, 3) RGB, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if encoding == "raw":
        data = np.ascontiguousarray(rgb).data.cast("B")
    elif encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise ProtocolError(f"JPEG encoding of a {width}x{height} frame failed")
        data = buf.data.cast("B")
    else:
        raise ProtocolError(f"frame encoding {encoding!r}: use one of {', '.join(FRAME_ENCODINGS)}")
    body = {"v": PROTOCOL_VERSION, "kind": REQUEST, "seq": seq, "capture_time": float(capture_time),
            "width": width, "height": height, "channels": 3, "encoding": encoding, "data": data}
    _validate(SegmentRequest, body)
    return msgpack.packb(body, use_bin_type=True)


def encode_mask(mask: np.ndarray, seq: int, inference_ms: float, replica_id: str, *,
                encoding: str = "raw") -> bytes:
    """Wire bytes of a mask reply for a uint8 (h, w) mask ("raw" or "png")."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ProtocolError(f"a mask must be uint8 (h, w), got {mask.dtype} {mask.shape}")
    height, width = mask.shape
    if encoding == "raw":
        data = np.ascontiguousarray(mask).data.cast("B")
    elif encoding == "png":
        ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise ProtocolError(f"PNG encoding of a {width}x{height} mask failed")
        data = buf.data.cast("B")
    else:
        raise ProtocolError(f"mask encoding {encoding!r}: use one of {', '.join(MASK_ENCODINGS)}")
    body = {"v": PROTOCOL_VERSION, "kind": MASK, "seq": seq, "width": width, "height": height,
            "encoding": encoding, "data": data, "inference_ms": float(inference_ms), "replica_id": replica_id}
    _validate(MaskReply, body)
    return msgpack.packb(body, use_bin_type=True)


# -- decode ------------------------------------------------------------------------------------

def decode(payload: bytes) -> Message:
    """Parse and validate one payload; raises ProtocolError for anything off-protocol.

    Bounds are enforced while unpacking (no container or string may claim more than the
    protocol allows), so a hostile payload never causes a large allocation.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the {MAX_REQUEST_BYTES}-byte limit")
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=False,
                               max_bin_len=MAX_FRAME_BYTES, max_str_len=MAX_TEXT,
                               max_array_len=0, max_map_len=16, max_ext_len=0)
    except (ValueError, TypeError, OverflowError) as exc:  # msgpack's errors are ValueError subclasses
        raise ProtocolError(f"not a msgpack message ({type(exc).__name__}: {exc})") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"message must be a msgpack map, got {type(body).__name__}")
    version = body.get("v")
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise ProtocolError(f"protocol version {version!r} is not supported (this side speaks "
                            f"{PROTOCOL_VERSION}): run the same holocam version on sink and segmenters")
    kind = body.get("kind")
    cls = _CLASS_OF.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    _validate(cls, body)
    return cls(**{name: body[name] for name in _FIELDS_OF[cls]})


def decode_parts(parts: list[bytes]) -> Message:
    """The one message of a received multipart (a socket's `recv` parts after any identity).

    Every holocam message is exactly one payload part; ProtocolError otherwise or if it is off-protocol.
    """
    if len(parts) != 1:
        raise ProtocolError(f"{len(parts)} frames instead of 1")
    return decode(parts[0])


def request_pixels(request: SegmentRequest) -> np.ndarray:
    """The RGB uint8 (h, w, 3) image of a validated request (a read-only view for raw)."""
    h, w = request.height, request.width
    if request.encoding == "raw":
        return np.frombuffer(request.data, np.uint8).reshape(h, w, 3)
    got = jpeg_size(request.data)
    if got != (w, h):
        raise ProtocolError(f"JPEG is {got[0]}x{got[1]} but the request says {w}x{h}")
    bgr = cv2.imdecode(np.frombuffer(request.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape != (h, w, 3):
        raise ProtocolError(f"JPEG data of request {request.seq} does not decode to {w}x{h} RGB")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def reply_mask(reply: MaskReply) -> np.ndarray:
    """The uint8 (h, w) mask of a validated reply (a read-only view for raw)."""
    h, w = reply.height, reply.width
    if reply.encoding == "raw":
        return np.frombuffer(reply.data, np.uint8).reshape(h, w)
    got = png_size(reply.data)
    if got != (w, h):
        raise ProtocolError(f"PNG is {got[0]}x{got[1]} but the reply says {w}x{h}")
    mask = cv2.imdecode(np.frombuffer(reply.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.shape != (h, w) or mask.dtype != np.uint8:
        raise ProtocolError(f"PNG data of mask {reply.seq} does not decode to a {w}x{h} uint8 mask")
    return mask


# -- image headers: read the claimed size before any decoder allocates for it -----------------

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_MAX_SEGMENTS = 64


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header; ProtocolError if there is none."""
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise ProtocolError("JPEG data does not start with a JPEG marker")
    pos = 2
    for _ in range(_JPEG_MAX_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:          # fill byte
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:   # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF:
            if length < 7 or pos + 9 > len(data):
                break
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if length < 2:
            break
        pos += 2 + length
    raise ProtocolError("JPEG data has no readable frame header")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an 8-bit greyscale PNG from its IHDR; ProtocolError otherwise."""
    if len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ProtocolError("PNG data does not start with a PNG header")
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if depth != 8 or colour != 0:
        raise ProtocolError(f"PNG mask must be 8-bit greyscale, got depth {depth} colour type {colour}")
    return width, height


# -- validation ---------------------------------------------------------------------------------

def _int(body: dict, name: str, low: int, high: int) -> int:
    value = body[name]
    if type(value) is not int:
        raise ProtocolError(f"field {name!r} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ProtocolError(f"field {name!r} = {value} is out of range [{low}, {high}]")
    return value


def _float(body: dict, name: str, low: float, high: float) -> float:
    value = body[name]
    if type(value) not in (float, int):
        raise ProtocolError(f"field {name!r} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ProtocolError(f"field {name!r} = {value} is out of range [{low}, {high}]")
    return value


def _text(body: dict, name: str, choices: tuple[str, ...] | None = None, *, empty: bool = False) -> str:
    value = body[name]
    if type(value) is not str:
        raise ProtocolError(f"field {name!r} must be a string, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise ProtocolError(f"field {name!r} = {value!r}: expected one of {', '.join(choices)}")
    if not empty and not value:
        raise ProtocolError(f"field {name!r} must not be empty")
    if len(value) > MAX_TEXT or not value.isprintable():
        raise ProtocolError(f"field {name!r} must be printable text of at most {MAX_TEXT} characters")
    return value


def _data(body: dict, name: str) -> bytes:
    value = body[name]
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"field {name!r} must be binary, got {type(value).__name__}")
    return value


def _validate(cls: type, body: dict) -> None:
    expected = {"v", "kind", *_FIELDS_OF[cls]}
    if body.keys() != expected:
        missing = sorted(expected - body.keys())
        extra = sorted(str(k) for k in body.keys() - expected)
        raise ProtocolError(f"{_KIND_OF[cls]} message: missing fields {missing}, unknown fields {extra}")
    if cls is Hello:
        _text(body, "model")
        _int(body, "width", 1, MAX_SIDE)
        _int(body, "height", 1, MAX_SIDE)
        _text(body, "resize", RESIZE_MODES)
        _int(body, "capacity", 1, MAX_CAPACITY)
        _text(body, "replica_id")
        _int(body, "heartbeat_ms", 1, MAX_INTERVAL_MS)
        _text(body, "device")
    elif cls is SegmentRequest:
        _int(body, "seq", 0, MAX_SEQ)
        _float(body, "capture_time", 0.0, 1e12)
        w = _int(body, "width", 1, MAX_SIDE)
        h = _int(body, "height", 1, MAX_SIDE)
        c = _int(body, "channels", 3, 3)
        encoding = _text(body, "encoding", FRAME_ENCODINGS)
        size = len(_data(body, "data"))
        if encoding == "raw" and size != w * h * c:
            raise ProtocolError(f"request data is {size} bytes, but {w}x{h}x{c} needs {w * h * c}")
        if encoding == "jpeg" and not 0 < size <= MAX_FRAME_BYTES:
            raise ProtocolError(f"JPEG request data of {size} bytes is out of range")
    elif cls is MaskReply:
        _int(body, "seq", 0, MAX_SEQ)
        w = _int(body, "width", 1, MAX_SIDE)
        h = _int(body, "height", 1, MAX_SIDE)
        encoding = _text(body, "encoding", MASK_ENCODINGS)
        size = len(_data(body, "data"))
        if encoding == "raw" and size != w * h:
            raise ProtocolError(f"mask data is {size} bytes, but {w}x{h} needs {w * h}")
        if encoding == "png" and not 0 < size <= MAX_MASK_BYTES:
            raise ProtocolError(f"PNG mask data of {size} bytes is out of range")
        _float(body, "inference_ms", 0.0, 3_600_000.0)
        _text(body, "replica_id")
    elif cls is Heartbeat:
        _int(body, "interval_ms", 1, MAX_INTERVAL_MS)
    elif cls is Error:
        _text(body, "code", ERROR_CODES)
        _text(body, "message", empty=True)
        _int(body, "seq", -1, MAX_SEQ)
    elif cls is Goodbye:
        _text(body, "reason", empty=True)
