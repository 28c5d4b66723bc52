"""Write JPEG frames, as they are, into an MJPEG .avi (RIFF: one video stream, an idx1 index).

OpenCV's VideoWriter encodes MJPG itself (always 4:2:0, no quality setting), so a benchmark that
wants frames like a webcam's (4:2:2 chroma, a webcam's quality) encodes them with simplejpeg and
stores them with this. FFmpeg (cv2.VideoCapture) reads the file as FOURCC MJPG and seeks in it
through the index, so the sink's VideoFileSource loops it like any other MJPEG file.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterable

AVIF_HASINDEX = 0x10
AVIIF_KEYFRAME = 0x10


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", len(body) + 4) + kind + body


def write_mjpeg_avi(path: Path, jpegs: Iterable[bytes], width: int, height: int, fps: float) -> Path:
    """Store `jpegs` (each one complete JPEG of width x height) as the frames of an MJPEG .avi."""
    frames = [bytes(j) for j in jpegs]
    if not frames or not all(f[:2] == b"\xff\xd8" for f in frames):
        raise ValueError("write_mjpeg_avi needs at least one frame, each a JPEG (starting FF D8)")
    largest = max(len(f) for f in frames)
    rate, scale = round(fps * 1000), 1000
    avih = struct.pack("<14I", round(1e6 / fps), round(largest * fps), 0, AVIF_HASINDEX, len(frames), 0, 1,
                       largest, width, height, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIII4h", 0, 0, 0, 0, scale, rate, 0, len(frames), largest,
                                     0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    header = _list(b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf)))
    movi, index, offset = [], [], 4          # idx1 offsets count from the 'movi' fourcc
    for f in frames:
        chunk = _chunk(b"00dc", f)
        index.append(b"00dc" + struct.pack("<III", AVIIF_KEYFRAME, offset, len(f)))
        movi.append(chunk)
        offset += len(chunk)
    body = b"AVI " + header + _list(b"movi", b"".join(movi)) + _chunk(b"idx1", b"".join(index))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
