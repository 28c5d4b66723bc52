"""Uploaded background images: size-limited, validated by decoding, stored in holocam's own folder.

An upload is accepted only if it is a JPEG or PNG whose header claims at most `MAX_SIDE` pixels a
side (read before decoding, so a small file cannot make OpenCV allocate gigabytes) and that
OpenCV decodes to exactly that size. It is stored under a name made from its content hash
(`<sha256[:16]>.jpg`), so no user-supplied name ever reaches the file system and uploading the
same picture twice stores it once. The folder is created private (0700, files 0600: pictures of
someone's room) and keeps the newest `KEEP_UPLOADS` files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np

from shared.protocol import ProtocolError, jpeg_size

logger = logging.getLogger(__name__)

UPLOAD_MAX_BYTES = 16 * 1024 * 1024
MAX_SIDE = 8192
KEEP_UPLOADS = 50
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class UploadError(ValueError):
    """A rejected upload; `status` is the HTTP status to answer, the message one line naming the fix."""

    status = 400


class UploadTooLarge(UploadError):
    status = 413


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"upload is larger than {limit // (1024 * 1024)} MiB: scale the picture down "
                          f"(a background needs no more than the camera's 1920x1080)")


def image_header(data: bytes) -> tuple[str, int, int]:
    """(extension, width, height) from a JPEG or PNG header; UploadError for anything else."""
    if data[:8] == _PNG_MAGIC:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise UploadError("upload is not a readable PNG (no IHDR header): save it again as PNG or JPEG")
        width, height = struct.unpack_from(">II", data, 16)
        return ".png", width, height
    if data[:2] == b"\xff\xd8":
        try:
            width, height = jpeg_size(data)
        except ProtocolError:
            raise UploadError("upload is not a readable JPEG (no frame header): save it again as JPEG or PNG") from None
        return ".jpg", width, height
    raise UploadError("upload is not a JPEG or PNG image: convert it (e.g. to .jpg) and upload again")


def validate_image(data: bytes) -> tuple[str, np.ndarray]:
    """Check and decode an uploaded image; returns (extension, BGR image)."""
    if not data:
        raise UploadError("upload is empty: choose an image file")
    ext, width, height = image_header(data)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise UploadError(f"image is {width}x{height}: use at most {MAX_SIDE}x{MAX_SIDE} pixels")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise UploadError("image does not decode (truncated or corrupt?): save it again and upload that")
    return ext, image


class UploadStore:
    """The folder of uploaded backgrounds.

    Args:
        folder: where to keep them (created 0700 if missing).
        max_bytes: the largest upload accepted.
        keep: how many uploads to keep (oldest removed first).
    """

    def __init__(self, folder: str | os.PathLike, *, max_bytes: int = UPLOAD_MAX_BYTES, keep: int = KEEP_UPLOADS) -> None:
        self.folder = Path(folder).expanduser().resolve()
        self.max_bytes = int(max_bytes)
        self.keep = int(keep)

    def save(self, data: bytes) -> Path:
        """Validate and store an upload; returns its path. Raises UploadError (or UploadTooLarge)."""
        if len(data) > self.max_bytes:
            raise too_large(self.max_bytes)
        ext, image = validate_image(data)
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self.folder / (hashlib.sha256(data).hexdigest()[:16] + ext)
            if not path.exists():
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=ext)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)   # atomic: a watcher never sees half a file
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            else:
                os.utime(path)   # the newest again, so pruning keeps it
        except OSError as exc:
            raise UploadError(f"cannot store the upload in {self.folder} ({exc.strerror}): check that folder's "
                              f"permissions or set --upload-dir") from None
        logger.info("I: stored uploaded background %s (%dx%d)", path, image.shape[1], image.shape[0])
        self._prune()
        return path

    def list(self) -> list[Path]:
        """Stored uploads, newest first."""
        if not self.folder.is_dir():
            return []
        files = [p for p in self.folder.iterdir() if p.suffix in (".jpg", ".png") and not p.name.startswith(".")]
        return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def _prune(self) -> None:
        for old in self.list()[self.keep:]:
            try:
                old.unlink()
            except OSError as exc:
                logger.warning("W: could not remove old upload %s: %s", old, exc)
