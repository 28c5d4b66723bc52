"""A small MJPEG .avi whose frames are told apart by a bar that grows frame by frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_bar_video(path: Path, frames: int = 10, fps: float = 20.0, width: int = 160, height: int = 120) -> Path:
    """Frame i shows a bar over the first (i + 1) / frames of the width (BGR 40, 160, 220)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    for i in range(frames):
        image = np.zeros((height, width, 3), np.uint8)
        image[:, : (i + 1) * width // frames] = (40, 160, 220)
        writer.write(image)
    writer.release()
    return path
