"""Segmenter replicas as real processes running the real selfie model, behind a real Dispatcher.

Three replicas connect to one port for the whole module; each test opens its own Dispatcher
(its own "sink") on that port, so every test after the first also checks that replicas move to
a new sink by themselves.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import numpy as np
import pytest

from capture_sink.dispatch import Dispatcher, MaskResult
from helpers_transport import (SegmenterProcess, SinkProcess, TcpProxy, decode_mask, free_port, prepared,
                               wait_for_replicas, wait_until)

MASK_TOLERANCE = 1.0      # mean |difference| in grey levels vs the in-process model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def three(module_segmenters, port) -> dict[str, SegmenterProcess]:
    endpoint = f"tcp://127.0.0.1:{port}"
    return {f"rep-{i}": module_segmenters.start(connect=[endpoint], replica_id=f"rep-{i}") for i in range(3)}


def sink(port: int, **kwargs) -> Dispatcher:
    d = Dispatcher(bind=[f"tcp://127.0.0.1:{port}"], **kwargs)
    d.start()
    return d


def close_to(mask: np.ndarray, expected: np.ndarray) -> bool:
    return float(np.abs(mask.astype(np.int16) - expected).mean()) <= MASK_TOLERANCE


def test_three_replicas_share_the_load(three, port, selfie_reference):
    applied: list[MaskResult] = []
    with sink(port, on_mask=applied.append) as d:
        wait_for_replicas(d, 3, list(three.values()))
        frame = prepared("astronaut", d.input_spec)
        expected = selfie_reference.segment(frame)
        for seq in range(1, 241):
            assert d.submit(frame, seq, time.monotonic())
            d.wait_for(seq, 2.0)
    counts = Counter(r.replica_id for r in applied)
    assert set(counts) == set(three)
    assert min(counts.values()) >= 0.2 * len(applied), counts
    assert all(close_to(r.mask, expected) for r in applied)
    assert expected.mean() > 40          # the astronaut really is found


def test_killed_replica_output_never_stops_and_it_rejoins(three, port, module_segmenters):
    applied: list[tuple[float, MaskResult]] = []
    with sink(port, on_mask=lambda r: applied.append((time.monotonic(), r))) as d:
        wait_for_replicas(d, 3, list(three.values()))
        frame = prepared("grace_hopper", d.input_spec)
        period = 1 / 30
        seq, killed_at, victim, restarted = 0, None, None, None
        loop_times = []
        start = time.monotonic()
        while time.monotonic() - start < 6.0:
            tick = time.monotonic()
            seq += 1
            d.submit(frame, seq, tick)
            d.wait_for(seq, period * 0.8)          # the sink's frame loop: bounded wait, then go on
            elapsed = tick - start
            if killed_at is None and elapsed > 1.5:
                busy = [r["replica_id"] for r in d.stats()["per_replica"] if r["in_flight"]]
                victim = busy[0] if busy else "rep-0"
                three[victim].kill()               # kill -9 mid-stream, ideally with a frame in flight
                killed_at = time.monotonic()
            if killed_at and restarted is None and elapsed > 3.0:
                three[victim] = module_segmenters.start(connect=[f"tcp://127.0.0.1:{port}"], replica_id=victim)
                restarted = time.monotonic()
            loop_times.append(time.monotonic() - tick)
            time.sleep(max(0.0, period - (time.monotonic() - tick)))
        if d.stats()["replicas"] < 3:     # a cold start can take longer than the stream; wait for it
            wait_for_replicas(d, 3, [three[victim]])
        for extra in range(seq + 1, seq + 60):
            d.submit(frame, extra, time.monotonic())
            d.wait_for(extra, 1.0)
        stats = d.stats()
    times = [t for t, _ in applied]
    after_kill = [t for t in times if t > killed_at]
    assert after_kill and after_kill[0] - killed_at < 1.0, "masks did not resume within 1 s"
    gaps = np.diff([t for t in times if t < restarted])
    assert gaps.max() < 1.0, f"mask output stalled for {gaps.max():.2f} s"
    assert max(loop_times) < 0.25, "the frame loop blocked"
    assert [r.seq for _, r in applied] == sorted({r.seq for _, r in applied})
    assert stats["replicas"] == 3
    assert any(r.replica_id == victim for t, r in applied if t > restarted), "the restarted replica got no work"


def test_replicas_resume_after_sink_restart(three, port):
    with sink(port) as d:
        wait_for_replicas(d, 3, list(three.values()))
        frame = prepared("camera", d.input_spec)
        d.submit(frame, 1, time.monotonic())
        assert d.wait_for(1, 5.0) is not None
    time.sleep(1.5)                 # long enough for every replica to notice the sink is gone
    started = time.monotonic()
    with sink(port) as d:
        wait_for_replicas(d, 3, list(three.values()), timeout_s=10.0)
        rejoin_s = time.monotonic() - started
        for seq in range(1, 61):
            d.submit(frame, seq, time.monotonic())
            d.wait_for(seq, 2.0)
        counts = d.stats()["masks_by_replica"]
    assert rejoin_s < 5.0
    assert set(counts) == set(three)


def test_replicas_resume_after_the_sink_process_is_killed(three, port, tmp_path):
    endpoint = f"tcp://127.0.0.1:{port}"
    first = SinkProcess([endpoint], tmp_path / "sink-1.log")
    try:
        assert first.call("wait_replicas", n=3)["ok"]
        before = first.call("segment", image="grace_hopper", seq=1)
        assert before["ok"]
    finally:
        first.kill()                        # kill -9: no goodbye, sockets torn down by the kernel
    second = SinkProcess([endpoint], tmp_path / "sink-2.log")
    try:
        started = time.monotonic()
        assert second.call("wait_replicas", n=3)["ok"]
        rejoin_s = time.monotonic() - started
        after = second.call("segment", image="grace_hopper", seq=1)   # seq restarts at 1: a new sink
    finally:
        second.stop()
    assert rejoin_s < 5.0
    assert after["ok"] and np.array_equal(decode_mask(after), decode_mask(before))


@pytest.mark.parametrize("slowed_by", ["delaying TCP proxy", "test-only delay option"])
def test_slowed_replica_never_causes_an_older_mask(segmenter_process, slowed_by):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    applied: list[int] = []
    proxy = TcpProxy(port, delay_s=0.075) if slowed_by == "delaying TCP proxy" else None
    with contextlib.ExitStack() as cleanup, sink(port, on_mask=lambda r: applied.append(r.seq)) as d:
        if proxy is not None:
            cleanup.callback(proxy.close)
        fast = segmenter_process.start(connect=[endpoint], replica_id="fast")
        if proxy is not None:        # 75 ms each way: every frame and mask arrives 150 ms late
            slow = segmenter_process.start(connect=[f"tcp://127.0.0.1:{proxy.port}"], replica_id="slow",
                                           extra=["--capacity", "2"])
        else:
            slow = segmenter_process.start(connect=[endpoint], replica_id="slow",
                                           extra=["--test-delay-ms", "150", "--capacity", "2"])
        wait_for_replicas(d, 2, [fast, slow])
        frame = prepared("astronaut", d.input_spec)
        start, seq = time.monotonic(), 0
        while time.monotonic() - start < 3.0:
            seq += 1
            d.submit(frame, seq, time.monotonic())
            time.sleep(0.004)                      # faster than one replica: the slow one gets work
        wait_until(lambda: all(r["in_flight"] == 0 for r in d.stats()["per_replica"]), 5.0, "in-flight work")
        stats = d.stats()
    assert applied == sorted(set(applied)), "an older mask was applied after a newer one"
    assert stats["masks_by_replica"].get("slow", 0) > 0, "the slow replica was never used"
    assert stats["stale_dropped"] > 0, "no reordering happened: the test proves nothing"


def test_sink_connects_to_binding_replicas_mixed_with_connecting_ones(segmenter_process):
    sink_port, replica_port = free_port(), free_port()
    binds = segmenter_process.start(bind=[f"tcp://127.0.0.1:{replica_port}"], replica_id="binds")
    connects = segmenter_process.start(connect=[f"tcp://127.0.0.1:{sink_port}"], replica_id="connects")
    with Dispatcher(bind=[f"tcp://127.0.0.1:{sink_port}"], connect=[f"tcp://127.0.0.1:{replica_port}"]) as d:
        d.start()
        wait_for_replicas(d, 2, [binds, connects])
        frame = prepared("astronaut", d.input_spec)
        for seq in range(1, 41):
            d.submit(frame, seq, time.monotonic())
            assert d.wait_for(seq, 5.0).seq == seq
        assert set(d.stats()["masks_by_replica"]) == {"binds", "connects"}
        # SIGTERM: goodbye, finish in-flight work, exit 0
        d.submit(frame, 41, time.monotonic())
        assert binds.stop() == 0 and connects.stop() == 0
        wait_until(lambda: d.stats()["replicas"] == 0, 2.0, "both replicas to leave")
        assert d.stats()["lost_inflight"] == 0
        assert "shutting down" in binds.log() and "shutting down" in connects.log()
