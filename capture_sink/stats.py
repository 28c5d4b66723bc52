"""Sink statistics: per-stage milliseconds, FPS in and out, mask age, drops.

`SinkStats` is written by the frame loop only (no lock needed for writes); `snapshot()` copies the
numbers into a plain dict that other threads (log line, web page, tests) may read at any time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

logger = logging.getLogger(__name__)

EMA_WEIGHT = 0.1          # per-stage ms running average: ~10 frames of memory
FPS_WINDOW_S = 2.0        # FPS counted over this sliding window


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = FPS_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], 1e-6)
        return (len(self._times) - 1) / span


class SinkStats:
    def __init__(self) -> None:
        self.stage_ms: dict[str, float] = {}
        self.frames_in = RateMeter()
        self.frames_out = RateMeter()
        self.counters: dict[str, int] = {"frames": 0, "no_mask": 0, "own_mask": 0, "older_mask": 0}
        self.mask_age_ms = 0.0
        self.latency_ms = 0.0
        self.extra: dict[str, object] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, (time.perf_counter() - start) * 1000.0)

    def record(self, name: str, ms: float) -> None:
        old = self.stage_ms.get(name)
        self.stage_ms[name] = ms if old is None else old + EMA_WEIGHT * (ms - old)

    def drop(self, name: str) -> None:
        """Forget a stage that no longer runs on its own (its time is now part of another)."""
        self.stage_ms.pop(name, None)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "fps_in": round(self.frames_in.rate(), 2),
                "fps_out": round(self.frames_out.rate(), 2),
                "stage_ms": {k: round(v, 3) for k, v in self.stage_ms.items()},
                "mask_age_ms": round(self.mask_age_ms, 1),
                "latency_ms": round(self.latency_ms, 1),
                "counters": dict(self.counters),
                **{k: v for k, v in self.extra.items()},
            }

    def log_line(self) -> str:
        snap = self.snapshot()
        stages = " ".join(f"{k}={v:.1f}" for k, v in snap["stage_ms"].items())
        c = snap["counters"]
        return (f"fps in={snap['fps_in']:.1f} out={snap['fps_out']:.1f} | ms {stages} | "
                f"mask age={snap['mask_age_ms']:.0f}ms latency={snap['latency_ms']:.0f}ms | "
                f"own={c.get('own_mask', 0)} older={c.get('older_mask', 0)} none={c.get('no_mask', 0)}"
                + (f" | replicas={snap['replicas']}" if "replicas" in snap else ""))
