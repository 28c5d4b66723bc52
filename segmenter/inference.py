"""A replica's model passes: frames in, encoded masks (or error replies) out.

A pass runs where it costs least while heartbeats keep flowing (worker.py):
- on the serving loop itself (`run_here`) once recent passes are short against the heartbeat
  period (a CPU model: 1.5-20 ms a pass against 200 ms): no hand-off to a thread and back, which
  cost ~0.25 CPU ms a frame on a 2-core Zen 3 (docs/sink-performance.md, "stop 28");
- on its own thread (`jobs`) while passes are long or not yet timed (a GPU's first passes, a slow
  CPU), so the loop keeps beating. With `batch`, frames already waiting there join one model pass:
  on a GPU one pass of 4 costs little more than one of 1.
"""

from __future__ import annotations

import collections
import queue
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from shared import protocol
from shared.protocol import ERR_BAD_REQUEST, MAX_TEXT, Error, ProtocolError, SegmentRequest
from shared.ratelog import RateLimitedLog

from .links import Link
from .model import ModelError, SegmentationModel

TIMED_PASSES = 8          # the recent passes `runs_inline` looks at (all of them must be short)
INLINE_SHARE = 0.25       # a pass on the serving loop may take at most this share of a heartbeat period


@dataclass
class Job:
    """One frame to segment, and the session it belongs to."""
    link: Link
    generation: int
    request: SegmentRequest
    received: float


class Inference:
    """Runs `model` on jobs from `jobs` (its thread) or `run_here`; puts (job, payload, ok) on `results`.

    After each pass of the thread it wakes the serving loop through `wake`.

    Args:
        model: the segmentation model.
        batch: let frames that wait together share one pass (`segment_batch`), up to `capacity`.
        replica_id: the name each mask carries.
        counts: the worker's counters; "batched_frames" is counted here.
        warn: the worker's rate-limited log.
        wake: the socket whose peer the serving loop polls; one byte after each pass of the thread.
        heartbeat_interval_s: the serving loop's heartbeat period; passes on the loop stay well under it.
    """

    def __init__(self, model: SegmentationModel, *, batch: bool, capacity: int, replica_id: str,
                 counts: dict[str, int], warn: RateLimitedLog, wake: socket.socket,
                 heartbeat_interval_s: float) -> None:
        self.model = model
        self.batch = batch
        self.capacity = capacity
        self.replica_id = replica_id
        self.counts = counts
        self._warn = warn
        self._wake = wake
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.results: queue.SimpleQueue = queue.SimpleQueue()
        self.mean_ms = 0.0
        self.inline_max_ms = heartbeat_interval_s * 1000.0 * INLINE_SHARE
        self._recent_ms: collections.deque[float] = collections.deque(maxlen=TIMED_PASSES)
        self._thread = threading.Thread(target=self._loop, name="holocam-inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Finish the jobs queued so far, then end the thread (waiting at most `timeout_s`)."""
        self.jobs.put(None)
        self._thread.join(timeout=timeout_s)

    def runs_inline(self) -> bool:
        """Whether the serving loop should run the next pass itself (`run_here`).

        Only without batching, with the thread idle (replies keep their order) and once the last
        TIMED_PASSES passes were all at most `inline_max_ms`: a long pass there would hold heartbeats.
        """
        return (not self.batch and self.jobs.unfinished_tasks == 0 and len(self._recent_ms) == TIMED_PASSES
                and max(self._recent_ms) <= self.inline_max_ms)

    def run_here(self, job: Job) -> None:
        """One pass on the caller's thread (the serving loop); the result goes onto `results`."""
        for done in self._infer([job]):
            self.results.put(done)
        self.counts["inline_passes"] += 1   # read by tests and the stop log

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                return
            jobs = [job]
            while self.batch and len(jobs) < self.capacity:   # frames already waiting join this pass
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.task_done()
                    self.jobs.put(None)   # stop after this pass
                    break
                jobs.append(more)
            for done in self._infer(jobs):
                self.results.put(done)
            for _ in jobs:
                self.jobs.task_done()   # after the results: `runs_inline` then sees the thread idle
            try:
                self._wake.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _infer(self, jobs: list[Job]) -> list[tuple[Job, bytes, bool]]:
        """Masks (or error replies) for `jobs`: one model pass for all when batching, else one each."""
        out, ready = [], []
        for job in jobs:
            try:
                ready.append((job, protocol.request_pixels(job.request)))
            except ProtocolError as exc:
                out.append((job, protocol.encode(Error(ERR_BAD_REQUEST, str(exc)[:MAX_TEXT], job.request.seq)), False))
                self._warn.warning("decode", "W: frame %d: %s", job.request.seq, exc)
        groups = [ready] if self.batch and len(ready) > 1 else [[item] for item in ready]
        for group in groups:
            try:
                started = time.perf_counter()
                if len(group) > 1:
                    masks = self.model.segment_batch([rgb for _, rgb in group])
                    self.counts["batched_frames"] += len(group)   # read by tests and logs only
                else:
                    masks = [self.model.segment(group[0][1])]
                inference_ms = (time.perf_counter() - started) * 1000.0   # the pass, as each frame waited it
                self._recent_ms.append(inference_ms)
                for (job, rgb), mask in zip(group, masks):
                    if mask.dtype != np.uint8 or mask.shape != rgb.shape[:2]:
                        raise ModelError(f"model returned {mask.dtype} {mask.shape} for a {rgb.shape[:2]} frame")
                    encoding = "png" if job.request.encoding == "jpeg" else "raw"
                    out.append((job, protocol.encode_mask(mask, job.request.seq, inference_ms, self.replica_id,
                                                          encoding=encoding), True))
                self.mean_ms += (inference_ms - self.mean_ms) * 0.05
            except Exception as exc:  # one bad frame must not take the replica down; say what happened
                for job, _ in group:
                    out.append((job, protocol.encode(Error(ERR_BAD_REQUEST, f"inference failed: {exc}"[:MAX_TEXT],
                                                           job.request.seq)), False))
                self._warn.error("inference", "E: inference failed on frame(s) %s: %r",
                                 [job.request.seq for job, _ in group], exc)
        return out
