"""A replica's inference thread: queued frames in, encoded masks (or error replies) out.

The model runs apart from the serving loop (worker.py), so heartbeats keep flowing while it
works. With `batch`, frames already waiting join one model pass: on a GPU one pass of 4 costs
little more than one of 1.
"""

from __future__ import annotations

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


@dataclass
class Job:
    """One frame to segment, and the session it belongs to."""
    link: Link
    generation: int
    request: SegmentRequest
    received: float


class Inference:
    """Runs `model` on jobs from `jobs`; puts (job, payload, ok) on `results` and wakes the loop.

    Args:
        model: the segmentation model.
        batch: let frames that wait together share one pass (`segment_batch`), up to `capacity`.
        replica_id: the name each mask carries.
        counts: the worker's counters; "batched_frames" is counted here.
        warn: the worker's rate-limited log.
        wake: the socket whose peer the serving loop polls; one byte after each pass.
    """

    def __init__(self, model: SegmentationModel, *, batch: bool, capacity: int, replica_id: str,
                 counts: dict[str, int], warn: RateLimitedLog, wake: socket.socket) -> None:
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
        self._thread = threading.Thread(target=self._loop, name="holocam-inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Finish the jobs queued so far, then end the thread (waiting at most `timeout_s`)."""
        self.jobs.put(None)
        self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            jobs = [job]
            while self.batch and len(jobs) < self.capacity:   # frames already waiting join this pass
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.put(None)   # stop after this pass
                    break
                jobs.append(more)
            for done in self._infer(jobs):
                self.results.put(done)
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
