"""Write to an output at a fixed rate, repeating the last frame when no new one arrived.

Not an output itself: it drives one (any `capture_sink.outputs.Output`, or the web preview) from
its own thread, so the frame loop hands each frame over without waiting for the device.

Chrome (and so Meet, Teams and Zoom in the browser) drops a v4l2loopback camera whose producer
stops writing, and with exclusive_caps=1 the device is only listed while a producer writes. So the
virtual camera must keep its rate even when masks stall or the pipeline hiccups: this thread
writes each new frame as soon as it is submitted, and the previous one again when no new one came
for 1.5/fps seconds (then every 1/fps). Until the first
frame arrives it writes black, so the camera appears as soon as holocam starts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import cv2
import numpy as np

from capture_sink.outputs.base import Output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0
MIN_GAP = 0.25        # periods between two writes of fresh frames, at least
FIRST_REPEAT = 1.5    # periods without a fresh frame before the last one is written again


@dataclass(frozen=True)
class SteadyStats:
    """Counters since start: frames written (new + repeated), submitted, replaced unwritten, late ticks."""

    written: int
    fresh: int
    repeats: int
    submitted: int
    dropped: int
    late: int


class SteadyWriter:
    """Writes the newest frame to ``output`` at ``fps`` from its own thread.

    Frames are BGR (H, W, 3) or YUYV (H, W, 2), the form the sink's passes made them in
    (capture_sink/app.py asks for YUYV while every output `takes_yuyv`): a YUYV frame goes to
    ``output.write_yuyv`` as it is, or, for an output that takes BGR only (a window or a file
    joining between two frames), is converted back to BGR here.

    ``submit`` copies a writeable frame (so the caller may reuse its buffer at once) and keeps a
    read-only one by reference: a frame its maker marked read-only is never written again (the
    effects hand out a fresh, read-only array each frame), so copying it is a waste, 2.7 MB at
    720p for every writer. ``submit`` never waits for the output. A frame submitted while an older one is still unwritten replaces it (counted in
    ``dropped``): the camera shows the newest picture, never a queue.

    Args:
        output: an open output; SteadyWriter writes to it but does not close it.
        fps: the rate to write at (usually the output's fps).
        start_black: write black frames until the first submit (default True).

    If the output raises, the thread logs the error and stops; the next ``submit`` or ``stop``
    raises it.
    """

    def __init__(self, output: Output, fps: float, *, start_black: bool = True) -> None:
        if not fps > 0:
            raise OutputError(f"steady writer rate {fps} is invalid: give a positive fps")
        self.output = output
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self._shape = (output.height, output.width, 3)
        # submit() copies writeable frames into whichever of a pair the thread is not writing
        # (one pair per form, BGR and YUYV, made when first needed)
        self._buffers = {3: (np.zeros(self._shape, np.uint8), np.zeros(self._shape, np.uint8))}
        self._pending = self._buffers[3][0]   # newest submitted, not yet written (own buffer or borrowed)
        self._current = self._buffers[3][1]   # what the thread writes (black at first)
        self._has_pending = False
        self._has_frame = start_black
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()     # set by submit() and stop()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._written = self._fresh = self._submitted = self._dropped = self._late = 0

    def start(self) -> SteadyWriter:
        """Start the writing thread (once)."""
        if self._thread is not None:
            raise RuntimeError("SteadyWriter.start() called twice")
        self._thread = threading.Thread(target=self._run, name=f"steady-{self.output.KEY}", daemon=True)
        self._thread.start()
        return self

    @property
    def takes_yuyv(self) -> bool:
        """Whether the output writes YUYV frames as they are (then the sink makes them so)."""
        return self.output.takes_yuyv

    def submit(self, frame: np.ndarray) -> None:
        """Hand over the newest frame, BGR or YUYV (copied unless read-only; returns at once)."""
        self._raise_if_failed()
        if frame.shape[:2] != self._shape[:2] or frame.ndim != 3 or frame.shape[2] not in (2, 3) \
                or frame.dtype != np.uint8:
            raise OutputError(
                f"steady writer takes BGR uint8 frames of shape {self._shape} (or YUYV of "
                f"{(*self._shape[:2], 2)}), got {frame.dtype} {frame.shape}: resize the frame, or open "
                f"the output at that size"
            )
        borrow = not frame.flags.writeable and frame.flags.c_contiguous
        with self._lock:
            if borrow:
                self._pending = frame
            else:
                # The thread reads _current outside the lock: copy into the other buffer.
                channels = frame.shape[2]
                if channels not in self._buffers:
                    self._buffers[channels] = (np.zeros(frame.shape, np.uint8), np.zeros(frame.shape, np.uint8))
                pair = self._buffers[channels]
                own = pair[0] if self._current is not pair[0] else pair[1]
                np.copyto(own, frame)
                self._pending = own
            if self._has_pending:
                self._dropped += 1
            self._has_pending = True
            self._submitted += 1
            self._wake.set()

    def stop(self) -> None:
        """Stop the thread and wait for it; raises the output's error if it failed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S + self.period)
            if self._thread.is_alive():
                logger.warning("W: steady writer for %s did not stop within %.1f s", self.output.KEY, STOP_TIMEOUT_S)
        self._raise_if_failed()

    @property
    def stats(self) -> SteadyStats:
        with self._lock:
            return SteadyStats(
                written=self._written,
                fresh=self._fresh,
                repeats=self._written - self._fresh,
                submitted=self._submitted,
                dropped=self._dropped,
                late=self._late,
            )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> SteadyWriter:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        try:
            self.stop()
        except Exception:  # the error already raised in the with-block matters more
            logger.exception("E: steady writer also failed while stopping")

    def _raise_if_failed(self) -> None:
        if self._error is None:
            return
        if isinstance(self._error, OutputError):
            raise self._error
        raise OutputError(f"the {self.output.KEY} output failed and stopped: {self._error}") from self._error

    def _run(self) -> None:
        # A fresh frame is written as soon as it arrives (no sooner than MIN_GAP periods after the
        # last write, so a burst cannot flood the device); waiting for the next clock tick instead
        # adds up to one period of latency to every frame (docs/sink-performance.md). Without fresh
        # frames the last one is repeated: the first time after FIRST_REPEAT periods (a late frame is
        # not answered with a duplicate), then every period.
        last_write = -float("inf")
        repeating = False
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                with self._lock:
                    fresh = self._has_pending
                    if not fresh:
                        self._wake.clear()
                due = last_write + self.period * (MIN_GAP if fresh else (1.0 if repeating else FIRST_REPEAT))
                if now < due:
                    if fresh:
                        self._stop.wait(due - now)
                    else:
                        self._wake.wait(due - now)   # a submit() or stop() wakes us early
                    continue
                with self._lock:
                    fresh = self._has_pending
                    if fresh:
                        # submit() fills the other buffer (or borrows) while this one is written.
                        self._current = self._pending
                        self._has_pending = False
                        self._has_frame = True
                    frame = self._current if self._has_frame else None
                if now - last_write > 2 * self.period and last_write > 0:
                    with self._lock:
                        self._late += 1     # a visible gap: a slow write or a suspended machine
                last_write = now
                repeating = not fresh
                if frame is not None:
                    self._write(frame)
                    with self._lock:
                        self._written += 1
                        self._fresh += int(fresh)
        except Exception as e:  # handed to the caller by submit()/stop()
            self._error = e
            logger.error("E: steady writer for %s stopped: %s", self.output.KEY, e)

    def _write(self, frame: np.ndarray) -> None:
        if frame.shape[2] == 3:
            self.output.write(frame)
        elif self.output.takes_yuyv:
            self.output.write_yuyv(frame)
        else:
            self.output.write(cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_YUYV))
