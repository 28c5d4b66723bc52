"""Video file output through OpenCV's VideoWriter; the codec follows the file extension.

A name with a printf counter and an image extension (`out/frame_%05d.png`) writes a lossless
image sequence instead (OpenCV's image-sequence writer): what tests and pixel checks want.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from capture_sink.outputs.base import Output, register_output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

# Codecs that OpenCV's bundled FFmpeg writes without extra libraries.
FOURCC_BY_EXTENSION = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
SEQUENCE_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")


@register_output
class FileOutput(Output):
    """Writes frames to a video file (.mp4/.m4v/.mov as MPEG-4 Part 2, .avi/.mkv as MJPEG).

    Args:
        width, height, fps: frame size and the rate stored in the file.
        path: the file to write; its folder must exist. An existing file is replaced.
        fourcc: override the codec chosen from the extension (four characters, e.g. "XVID").
    """

    KEY = "file"

    def __init__(self, *, width: int, height: int, fps: float, path: str | Path,
                 fourcc: str | None = None) -> None:
        super().__init__(width=width, height=height, fps=fps)
        self.path = Path(path)
        extension = self.path.suffix.lower()
        sequence = "%" in self.path.name and extension in SEQUENCE_EXTENSIONS
        if sequence:
            fourcc = "\0\0\0\0"     # fourcc 0: OpenCV's image-sequence writer, one file per frame
        elif fourcc is None:
            if extension not in FOURCC_BY_EXTENSION:
                raise OutputError(
                    f"cannot tell the video codec from {self.path.name!r}: "
                    f"name the file with one of {', '.join(FOURCC_BY_EXTENSION)}, or frame_%05d.png for images"
                )
            fourcc = FOURCC_BY_EXTENSION[extension]
        if len(fourcc) != 4:
            raise OutputError(f"fourcc {fourcc!r} is not four characters: give one such as mp4v or MJPG")
        if not self.path.parent.is_dir():
            raise OutputError(f"folder {self.path.parent} does not exist: create it or write the video elsewhere")
        self.fourcc = fourcc
        if sequence:
            self._writer = cv2.VideoWriter(str(self.path), cv2.CAP_IMAGES, 0, self.fps, (self.width, self.height))
        else:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                           (self.width, self.height))
        if not self._writer.isOpened():
            self._writer.release()
            raise OutputError(
                f"OpenCV cannot write {self.path} as {fourcc}: check the folder is writable, or pick another "
                f"extension ({', '.join(FOURCC_BY_EXTENSION)})"
            )
        logger.info("I: writing %dx%d %s video to %s at %.3g fps", self.width, self.height, fourcc, self.path, fps)

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one BGR frame to the file."""
        self._check_frame(frame_bgr)
        self._writer.write(frame_bgr)
        self.frames_written += 1

    def _close(self) -> None:
        self._writer.release()
        logger.info("I: wrote %d frames to %s", self.frames_written, self.path)
