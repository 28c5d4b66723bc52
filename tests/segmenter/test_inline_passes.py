"""Where a replica runs its model passes: on the serving loop while they are short, else on a thread.

The real landscape model and real ZeroMQ sockets to a real sink dispatcher; a "slow CPU" is the
real model with a sleep added to each pass.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import numpy as np
import pytest

from segmenter.device import check_images
from segmenter.inference import TIMED_PASSES, Inference, Job
from segmenter.model import create_model
from shared import protocol
from shared.ratelog import RateLimitedLog


@pytest.fixture(scope="module")
def model():
    return create_model("selfie-landscape", threads=1)


@pytest.fixture(scope="module")
def photos(model):
    return check_images(model.input_spec)


class SlowedModel:
    """The real model, each pass held `delay_s` longer (a slow CPU); `slow_next` slows only the next one."""

    def __init__(self, model, delay_s: float = 0.0) -> None:
        self._model = model
        self.delay_s = delay_s
        self.slow_next = 0.0
        self.input_spec = model.input_spec
        self.KEY = model.KEY

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s + self.slow_next)
        self.slow_next = 0.0
        return self._model.segment(rgb)


def _job(photo: np.ndarray, seq: int) -> Job:
    request = protocol.decode(protocol.encode_request(photo, seq, time.monotonic()))
    return Job(link=None, generation=0, request=request, received=time.monotonic())


@pytest.fixture
def wake():
    r, w = socket.socketpair()
    w.setblocking(False)
    yield w
    r.close()
    w.close()


def _inference(model, wake, *, batch: bool = False, heartbeat_interval_s: float = 0.2) -> Inference:
    counts = {"batched_frames": 0, "inline_passes": 0}
    return Inference(model, batch=batch, capacity=4, replica_id="t", counts=counts,
                     warn=RateLimitedLog(logging.getLogger("test")), wake=wake,
                     heartbeat_interval_s=heartbeat_interval_s)


def _on_thread(inference: Inference, job: Job) -> tuple:
    inference.jobs.put(job)
    inference.jobs.join()
    return inference.results.get_nowait()


def test_passes_move_to_the_loop_only_after_enough_short_ones_and_back_after_a_long_one(model, photos, wake):
    slowed = SlowedModel(model)
    inference = _inference(slowed, wake)   # heartbeat 0.2 s: a pass on the loop may take 50 ms
    inference.start()
    try:
        assert not inference.runs_inline()   # no pass timed yet (a GPU's first passes can take seconds)
        for seq in range(TIMED_PASSES):
            assert not inference.runs_inline()
            _on_thread(inference, _job(photos[seq % len(photos)], seq))
        assert inference.runs_inline()
        inference.run_here(_job(photos[0], 100))
        job, payload, ok = inference.results.get_nowait()
        reply = protocol.decode(payload)
        assert ok and reply.seq == 100 and inference.counts["inline_passes"] == 1
        np.testing.assert_array_equal(protocol.reply_mask(reply), model.segment(photos[0]))

        slowed.slow_next = 0.08   # one pass longer than the loop may hold: the next ones go to the thread
        inference.run_here(_job(photos[1], 101))
        inference.results.get_nowait()
        for seq in range(TIMED_PASSES):   # until it leaves the window of timed passes
            assert not inference.runs_inline(), seq
            _on_thread(inference, _job(photos[seq % len(photos)], 200 + seq))
        assert inference.runs_inline()

        inference.jobs.put(_job(photos[0], 300))   # work waiting on the thread: the loop must not overtake it
        assert not inference.runs_inline()
        inference.jobs.join()
    finally:
        inference.stop(5)


def test_batching_and_a_short_heartbeat_keep_passes_on_the_thread(model, photos, wake):
    batched = _inference(model, wake, batch=True)
    tight = _inference(model, wake, heartbeat_interval_s=0.004)   # 1 ms allowed: shorter than any pass
    for inference in (batched, tight):
        inference.start()
        try:
            for seq in range(TIMED_PASSES + 2):
                _on_thread(inference, _job(photos[seq % len(photos)], seq))
            assert not inference.runs_inline()
        finally:
            inference.stop(5)


def _serve(model, port: int, heartbeat_s: float, seconds: float, period_s: float):
    from capture_sink.dispatch import Dispatcher
    from bench.harness import wait_until
    from segmenter.worker import Worker

    worker = Worker(model, connect=[f"tcp://127.0.0.1:{port}"], capacity=2, replica_id="r",
                    heartbeat_interval_s=heartbeat_s)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    masks = []
    try:
        with Dispatcher(bind=[f"tcp://127.0.0.1:{port}"], heartbeat_interval_s=heartbeat_s,
                        on_mask=masks.append) as sink:
            sink.start()
            wait_until(lambda: sink.stats()["replicas"] == 1, 30, "the replica's hello")
            photos = check_images(model.input_spec)
            seq, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                seq += 1
                sink.submit(photos[seq % len(photos)], seq, time.monotonic())
                time.sleep(period_s)
            stats = sink.stats()
    finally:
        stop.set()
        thread.join(10)
    return worker, masks, stats


def test_a_fast_replica_answers_from_its_serving_loop_over_zeromq(model):
    from bench.harness import free_port

    worker, masks, stats = _serve(model, free_port(), 0.2, 2.0, 1 / 30)
    assert len(masks) >= 30 and worker.counts["failed"] == 0, (len(masks), worker.counts)
    # all but the first timed passes (and any that met a frame still on the thread) ran on the loop
    assert worker.counts["inline_passes"] >= worker.counts["masks"] - 2 * TIMED_PASSES, worker.counts
    assert stats["lost_inflight"] == 0 and stats["replicas"] == 1


def test_a_slow_replica_keeps_beating_while_its_passes_run(model):
    """Passes longer than the sink's patience (4 x 50 ms): on the loop they would get the replica dropped."""
    from bench.harness import free_port

    # a frame every 0.4 s: the thread is idle when the next comes; 6 s: the first TIMED_PASSES
    # frames (3.2 s) are timed on the thread anyway
    worker, masks, stats = _serve(SlowedModel(model, delay_s=0.25), free_port(), 0.05, 6.0, 0.4)
    assert worker.counts["inline_passes"] == 0, worker.counts
    assert len(masks) >= 8, len(masks)
    assert stats["lost_inflight"] == 0 and stats["replicas"] == 1, stats
