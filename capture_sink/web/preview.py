"""The live preview: the sink's output as JPEGs for MJPEG streams and snapshots.

`PreviewOutput` is an ordinary sink output (`capture_sink.outputs.base.Output`) that the app
feeds through a `SteadyWriter` at `PREVIEW_FPS`, like the virtual camera: the frame loop only
copies the frame, and JPEG encoding (about 5 ms at 720p) runs on the writer's thread, and only
while someone watches. `PreviewHub` lives on the web server's asyncio loop: it keeps the newest
JPEG and wakes the stream handlers; each client sends the newest frame and skips the ones it was
too slow for, so a slow browser never builds a queue.
"""

from __future__ import annotations

import asyncio
import logging
import time

import cv2
import numpy as np

from capture_sink.outputs.base import Output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

PREVIEW_FPS = 15.0
JPEG_QUALITY = 80


class PreviewHub:
    """The newest preview JPEG and who waits for it. `publish` may be called from any thread;
    everything else runs on the server's event loop (`attach` first)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self.jpeg: bytes | None = None
        self.taken_at = 0.0       # when the writer took the newest JPEG's frame (time.monotonic())
        self.seq = 0
        self.clients = 0          # open MJPEG streams (viewers, for on-demand segmenting)
        self.snapshot_waiters = 0
        self.closing = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the server's loop (called on that loop)."""
        self._loop = loop
        self._event = asyncio.Event()

    @property
    def wanted(self) -> bool:
        """Whether anyone needs frames encoded (read by the writer thread; a plain int read)."""
        return self.clients > 0 or self.snapshot_waiters > 0

    def publish(self, jpeg: bytes, taken_at: float) -> None:
        """Hand a new JPEG to the loop (any thread); `taken_at`: when its frame left the frame loop."""
        loop = self._loop
        if loop is None or self.closing:
            return
        try:
            loop.call_soon_threadsafe(self._set, jpeg, taken_at)
        except RuntimeError:  # the loop closed while the server stopped
            pass

    def _set(self, jpeg: bytes, taken_at: float) -> None:
        self.jpeg = jpeg
        self.taken_at = taken_at
        self.seq += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def next_frame(self, seen: int, timeout_s: float) -> tuple[int, bytes | None]:
        """The newest frame after `seen` as (seq, jpeg); jpeg is None after `timeout_s` or on close."""
        if self.seq > seen and not self.closing:
            return self.seq, self.jpeg
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except asyncio.TimeoutError:
            return seen, None
        if self.closing or self.seq <= seen:
            return seen, None
        return self.seq, self.jpeg

    async def snapshot(self, timeout_s: float) -> bytes | None:
        """A JPEG of a frame taken after this call (so it shows the settings applied by now), or None."""
        asked_at = time.monotonic()
        deadline = asked_at + timeout_s
        self.snapshot_waiters += 1
        try:
            seen = self.seq
            while True:
                seen, jpeg = await self.next_frame(seen, max(0.0, deadline - time.monotonic()))
                if jpeg is None:
                    return None
                if self.taken_at > asked_at:   # not a frame whose encoding began before we asked
                    return jpeg
        finally:
            self.snapshot_waiters -= 1

    def close(self) -> None:
        """Wake every waiter and refuse new frames (on the loop)."""
        self.closing = True
        if self._event is not None:
            self._event.set()


class PreviewOutput(Output):
    """Encodes the frames it is given to JPEG for the `PreviewHub`, only while the hub wants them.

    It takes the virtual camera's YUYV frames too (`takes_yuyv`), so the page being on does not make
    the sink store every frame as BGR: a YUYV frame is converted only when it is encoded, at the
    preview's rate and only while someone watches (capture_sink/app.py, `_writers_take_yuyv`).
    """

    KEY = "web-preview"
    takes_yuyv = True

    def __init__(self, *, width: int, height: int, fps: float, hub: PreviewHub,
                 quality: int = JPEG_QUALITY) -> None:
        super().__init__(width=width, height=height, fps=fps)
        if not 1 <= quality <= 100:
            raise OutputError(f"JPEG quality {quality} is out of range: give 1..100")
        self.hub = hub
        self.frames_encoded = 0
        self._params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]

    @property
    def viewers(self) -> int:
        return self.hub.clients

    def write(self, frame_bgr: np.ndarray) -> None:
        taken_at = time.monotonic()
        self._check_frame(frame_bgr)
        self._encode(frame_bgr, taken_at)

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        taken_at = time.monotonic()
        self._check_frame(frame_yuyv, channels=2)
        self._encode(frame_yuyv, taken_at)

    def _encode(self, frame: np.ndarray, taken_at: float) -> None:
        self.frames_written += 1
        if not self.hub.wanted:
            return
        frame_bgr = frame if frame.shape[2] == 3 else cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_YUYV)
        ok, jpeg = cv2.imencode(".jpg", frame_bgr, self._params)
        if not ok:
            raise OutputError("OpenCV could not encode a preview JPEG: check the frame is BGR uint8")
        self.frames_encoded += 1
        self.hub.publish(jpeg.tobytes(), taken_at)

    def _close(self) -> None:
        logger.debug("D: web preview closed after %d frames (%d encoded)", self.frames_written, self.frames_encoded)
