"""Preview window through cv2.imshow (the seed's ONLY_DISPLAY mode)."""

from __future__ import annotations

import logging
import os
import re
import sys

import cv2
import numpy as np

from capture_sink.outputs.base import Output, register_output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

_QUIT_KEYS = {ord("q"), 27}  # q, Esc


def opencv_gui_backend() -> str | None:
    """The GUI toolkit OpenCV was built with ("GTK3", "QT5", ...), or None for a headless build."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    backend = match.group(1) if match else None
    return None if backend in (None, "NONE") else backend


@register_output
class WindowOutput(Output):
    """Shows frames in a desktop window; ``quit_requested`` turns True on q/Esc or when it is closed.

    Args:
        width, height, fps: frame size and rate (the window shows what it gets).
        title: the window title.
    """

    KEY = "window"

    def __init__(self, *, width: int, height: int, fps: float, title: str = "holocam preview") -> None:
        super().__init__(width=width, height=height, fps=fps)
        if opencv_gui_backend() is None:
            raise OutputError(
                "the preview window needs OpenCV with GUI support, this one is headless: "
                "pip install opencv-python (instead of opencv-python-headless), or use the web page "
                "(http://127.0.0.1:8080/) to preview in a browser"
            )
        # Opening a window without a display aborts some toolkits (Qt) instead of raising.
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError(
                "no display for the preview window (DISPLAY is not set): run holocam in a desktop session, "
                "or use the web page (http://127.0.0.1:8080/) to preview in a browser"
            )
        self.title = title
        self.quit_requested = False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
            cv2.resizeWindow(title, self.width, self.height)
        except cv2.error as e:
            raise OutputError(f"OpenCV cannot open a window ({' '.join(str(e).split())[:160]}): "
                              f"use the web page (http://127.0.0.1:8080/) to preview in a browser") from None

    def write(self, frame_bgr: np.ndarray) -> None:
        """Show one frame and handle the window's events."""
        self._check_frame(frame_bgr)
        cv2.imshow(self.title, frame_bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            if not self.quit_requested:
                logger.info("I: preview window closed by the user")
            self.quit_requested = True
        self.frames_written += 1

    def _close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            logger.debug("D: preview window was already gone")
