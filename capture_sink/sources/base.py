"""What every frame source shares: the Frame, the capture thread that keeps only the newest
frame, the pacer of file and demo sources, and scale-to-fill.

A reader that is slower than the source sees increasing `seq` numbers with gaps; the frames it
skipped were dropped (counted in `dropped`), never queued, so the sink always works on the present.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from shared.registry import Registry

logger = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 2.0


class CaptureError(RuntimeError):
    """A source the user must fix; the message is one line that says how."""


@dataclass(frozen=True)
class Frame:
    """One captured frame: BGR uint8 (H, W, 3), its sequence number and monotonic capture time."""

    image: np.ndarray
    seq: int
    capture_time: float


def scale_to_fill(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to cover width x height, aspect kept, centre-cropped (no copy if same size)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    scale = max(width / w, height / h)
    sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interpolation)
    x, y = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y:y + height, x:x + width])


class Source(ABC):
    """A frame source with a capture thread that keeps only the newest frame.

    Subclasses implement `_grab()` (block until the next frame is due, return it, or None at the
    end of a finite source) and may override `_release()`.
    """

    def __init__(self, width: int, height: int, fps: float, name: str) -> None:
        self.width, self.height, self.fps, self.name = width, height, float(fps), name
        self.captured = 0
        self.dropped = 0           # frames replaced before anyone read them
        self.ended = False         # a finite source ran out (video with loop=False)
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._last_read_seq = -1
        self._error: CaptureError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Source":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                image = self._grab()
                if image is None:
                    if self._stop.is_set():
                        break
                    with self._cond:
                        self.ended = True
                        self._cond.notify_all()
                    logger.info("I: source %s ended after %d frames", self.name, self.captured)
                    break
                frame = Frame(image, seq, time.monotonic())
                seq += 1
                with self._cond:
                    if self._newest is not None and self._newest.seq > self._last_read_seq:
                        self.dropped += 1
                    self._newest = frame
                    self.captured += 1
                    self._cond.notify_all()
        except CaptureError as exc:
            logger.error("E: %s", exc)
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def read(self, timeout_s: float) -> Frame | None:
        """The newest frame not returned before, waiting up to `timeout_s`; None on timeout or end.

        Raises:
            CaptureError: the source failed (camera unplugged or taken away).
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._newest is not None and self._newest.seq > self._last_read_seq:
                    self._last_read_seq = self._newest.seq
                    return self._newest
                if self._error is not None:
                    raise self._error
                remaining = deadline - time.monotonic()
                if self.ended or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    @abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Block until the next frame is due and return it (None: a finite source ended)."""

    def _release(self) -> None:
        pass

    def close(self) -> None:
        """Stop the capture thread and release the device or file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                logger.warning("W: capture thread of %s did not stop within %.0f s", self.name, JOIN_TIMEOUT_S)
        self._release()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Pacer:
    """Sleeps until the next frame time of a fixed rate; after a stall it restarts the schedule
    instead of bursting to catch up."""

    def __init__(self, fps: float, stop: threading.Event) -> None:
        self.period = 1.0 / fps
        self.stop = stop
        self.next_t: float | None = None

    def wait(self) -> bool:
        now = time.monotonic()
        if self.next_t is None or now - self.next_t > self.period:
            self.next_t = now
        delay = self.next_t - now
        self.next_t += self.period
        return not self.stop.wait(delay) if delay > 0 else not self.stop.is_set()


# kind -> opener(spec, width=, height=, fps=, loop=) -> a started Source; `capture_sink.sources.source_kind`
# says which kind a --source value is.
SOURCES: Registry[Callable[..., Source]] = Registry("source", CaptureError)
