"""The interface every output implements: write BGR frames of one fixed size, then close."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from capture_sink.outputs.errors import OutputError
from shared.registry import Registry

logger = logging.getLogger(__name__)


class Output(ABC):
    """Base class of the sink's outputs (v4l2loopback, window, file, null).

    An output is opened for one frame size and rate; ``write`` takes BGR uint8 frames of
    exactly that size (the sink's colour convention). Problems a user can fix raise
    :class:`OutputError`.

    Subclasses set ``KEY`` (the name ``create_output`` knows them by), implement ``write`` and
    ``_close``, and are registered with ``@register_output``.
    """

    KEY: ClassVar[str]
    # True where `write_yuyv` takes a YUYV frame as it is (the v4l2 output at pixel_format YUYV):
    # the sink then makes YUYV frames straight away (capture_sink/app.py) and nothing converts.
    takes_yuyv: bool = False

    def __init__(self, *, width: int, height: int, fps: float) -> None:
        if width <= 0 or height <= 0:
            raise OutputError(f"output size {width}x{height} is invalid: give a positive width and height")
        if not fps > 0:
            raise OutputError(f"output frame rate {fps} is invalid: give a positive fps")
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.frames_written = 0
        self._closed = False

    @abstractmethod
    def write(self, frame_bgr: np.ndarray) -> None:
        """Write one BGR uint8 frame of shape (height, width, 3)."""

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        """Write one YUYV uint8 frame of shape (height, width, 2); only where `takes_yuyv`."""
        raise OutputError(f"the {self.KEY} output takes BGR frames only: hand it BGR, or check takes_yuyv first")

    @abstractmethod
    def _close(self) -> None:
        """Release the output's resources (called once)."""

    @property
    def viewers(self) -> int | None:
        """How many clients are watching right now, or None where the output cannot tell."""
        return None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the output; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_frame(self, frame: np.ndarray, channels: int = 3) -> None:
        """Raise OutputError unless ``frame`` is an open output's BGR uint8 (H, W, 3) frame
        (with ``channels=2``: its YUYV (H, W, 2) frame)."""
        if self._closed:
            raise OutputError(f"{self.KEY} output is closed: create a new one to write again")
        expected = (self.height, self.width, channels)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = (
                f"{type(frame).__name__}"
                if not isinstance(frame, np.ndarray)
                else f"{frame.dtype} {frame.shape}"
            )
            raise OutputError(
                f"{self.KEY} output takes {'BGR' if channels == 3 else 'YUYV'} uint8 frames of shape {expected}, got {got}: "
                f"resize/convert the frame, or open the output at {self.width}x{self.height}"
            )


OUTPUTS: Registry[type[Output]] = Registry("output", OutputError)


def register_output(cls: type[Output]) -> type[Output]:
    """Class decorator: make `cls` known to `create_output` under its ``KEY``."""
    return OUTPUTS.add(cls.KEY, cls)
