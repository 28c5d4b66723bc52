"""Stand-ins the benchmarks plug into the real sink to watch it: stage timers and device-less outputs.

The outputs do a v4l2 writer's per-frame work (the colour conversion into a reused buffer) minus the
write(2), since the benchmark machine has no loopback device.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from capture_sink.outputs.base import Output
from capture_sink.outputs.yuv import BgrToI420, BgrToYuyv
from capture_sink.stats import SinkStats


class RecordingStats(SinkStats):
    """SinkStats that also keeps every stage sample (the app's own `stats.stage` timers)."""

    def __init__(self) -> None:
        super().__init__()
        self.samples: dict[str, list[float]] = defaultdict(list)

    def record(self, name: str, ms: float) -> None:
        super().record(name, ms)
        self.samples[name].append(ms)


class I420LatencyOutput(Output):
    """What the v4l2 writer does per frame, minus the write(2): BGR -> I420 into a reused buffer.

    The frame loop stamps the capture time of the frame it just submitted; each fresh stamp seen
    here gives one capture-to-output latency sample.
    """

    KEY = "bench-i420"

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(width=width, height=height, fps=fps)
        self._convert = BgrToI420(width, height)
        self.stamp: float | None = None
        self._last_stamp: float | None = None
        self.latencies_ms: list[float] = []
        self.convert_ms: list[float] = []

    def write(self, frame_bgr: np.ndarray) -> None:
        started = time.perf_counter()
        self._convert.convert(frame_bgr)
        self.convert_ms.append((time.perf_counter() - started) * 1e3)
        self.frames_written += 1
        stamp = self.stamp
        if stamp is not None and stamp != self._last_stamp:
            self._last_stamp = stamp
            self.latencies_ms.append((time.monotonic() - stamp) * 1e3)

    def _close(self) -> None:
        pass


class YuyvOutput(Output):
    """The v4l2 writer's per-frame work without a device: YUYV frames taken as they are, BGR ones
    converted to YUYV into a reused buffer."""

    KEY = "bench-yuyv"
    takes_yuyv = True      # as the v4l2 output at its default pixel format

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(width=width, height=height, fps=fps)
        self._convert = BgrToYuyv(width, height)

    def write(self, frame_bgr: np.ndarray) -> None:
        self._convert.convert(frame_bgr)
        self.frames_written += 1

    def write_yuyv(self, frame_yuyv: np.ndarray) -> None:
        self._check_frame(frame_yuyv, channels=2)   # made as YUYV by the sink: nothing to convert
        self.frames_written += 1

    def _close(self) -> None:
        pass
