"""capture_sink.dispatch: credit, newest-first, stale masks, liveness, refusal, bad input.

Real ZeroMQ sockets on loopback, in one process. Replicas are either the real `segmenter.worker.Worker`
serving a plain-function model on a thread (no torch), or a hand-driven DEALER that says exactly
what a test needs (out-of-order replies, silence, garbage).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

import cv2
import numpy as np
import pytest
import skimage.data
import zmq

from capture_sink.dispatch import Dispatcher, MaskResult
from segmenter.model.base import InputSpec, SegmentationModel
from segmenter.worker import Worker
from shared import protocol
from shared.protocol import Error, Goodbye, Heartbeat, Hello, SegmentRequest
from shared.errors import TransportError
from shared.transport import ReplicaSocket, SinkSocket, poll_timeout_ms

W, H = 64, 48
FAST_BEAT = {"heartbeat_interval_s": 0.05, "heartbeat_liveness": 4}   # 0.2 s expiry: quick tests


class RedChannel(SegmentationModel):
    """A 'model' that is a plain function: the mask is the frame's red channel."""
    KEY = "red"

    def __init__(self, width: int = W, height: int = H, resize: str = "stretch") -> None:
        self._spec = InputSpec(width, height, resize)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb[..., 0])


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (W, H), interpolation=cv2.INTER_AREA)


def wait_until(condition, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@contextlib.contextmanager
def dispatcher(**kwargs) -> Iterator[Dispatcher]:
    kwargs.setdefault("bind", ["tcp://127.0.0.1:*"])
    with Dispatcher(**kwargs) as d:
        d.start()
        yield d


@contextlib.contextmanager
def worker(model: SegmentationModel, **kwargs) -> Iterator[Worker]:
    w = Worker(model, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=w.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield w
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "worker did not stop"


class ManualReplica:
    """A DEALER driven by hand: it says and answers exactly what a test tells it to."""

    def __init__(self, endpoint: str, *, capacity: int = 1, width: int = W, height: int = H,
                 model: str = "red", heartbeat_ms: int = 50) -> None:
        self.sock = ReplicaSocket(endpoint, mode="connect")
        self.hello = Hello(model, width, height, "stretch", capacity, f"manual-{id(self) % 1000}", heartbeat_ms)

    def send(self, message) -> None:
        assert self.sock.send(protocol.encode(message) if not isinstance(message, bytes) else message)

    def say_hello(self) -> None:
        self.send(self.hello)

    def recv(self, timeout_s: float = 2.0, kind: type | None = None):
        """Next message (of `kind`, skipping heartbeats otherwise) or None on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.sock.socket.poll(10):
                message = protocol.decode(self.sock.recv()[0])
                if kind is None or isinstance(message, kind):
                    return message
        return None

    def answer(self, request: SegmentRequest, seq: int | None = None) -> None:
        mask = protocol.request_pixels(request)[..., 0].copy()
        self.sock.send(protocol.encode_mask(mask, request.seq if seq is None else seq, 1.0, self.hello.replica_id))

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def manual(endpoint: str, **kwargs) -> Iterator[ManualReplica]:
    replica = ManualReplica(endpoint, **kwargs)
    try:
        yield replica
    finally:
        replica.close()


def joined(d: Dispatcher, n: int = 1) -> None:
    wait_until(lambda: d.stats()["replicas"] >= n, what=f"{n} replica(s) to join")


# -- the happy path ----------------------------------------------------------------------------------

def test_mask_comes_back_for_a_submitted_frame(frame):
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint]):
        joined(d)
        assert d.input_spec == InputSpec(W, H, "stretch")
        assert d.submit(frame, 1, 10.0)
        result = d.wait_for(1, 5.0)
        assert isinstance(result, MaskResult) and result.seq == 1 and result.capture_time == 10.0
        assert np.array_equal(result.mask, frame[..., 0])
        assert not result.mask.flags.writeable
        assert result.replica_id == d.stats()["per_replica"][0]["replica_id"]


def test_submit_returns_false_without_replicas(frame):
    with dispatcher() as d:
        assert d.input_spec is None
        assert not d.submit(frame, 1, 0.0)
        assert d.wait_for(1, 0.05) is None


def test_submitted_buffer_may_be_reused_at_once(frame):
    buffer = frame.copy()
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint]):
        joined(d)
        d.submit(buffer, 1, 0.0)
        buffer[:] = 0                     # the caller's preallocated buffer takes the next frame
        assert np.array_equal(d.wait_for(1, 5.0).mask, frame[..., 0])


def test_jpeg_frames_come_back_as_png_masks(frame):
    with dispatcher(encoding="jpeg") as d, worker(RedChannel(), connect=[d.bound_endpoint]):
        joined(d)
        d.submit(frame, 1, 0.0)
        mask = d.wait_for(1, 5.0).mask
        assert np.abs(mask.astype(np.int16) - frame[..., 0]).mean() < 6.0


def test_sink_connects_to_a_binding_replica_and_mixed(frame):
    with worker(RedChannel(), bind=["tcp://127.0.0.1:*"], replica_id="binds") as bound:
        wait_until(lambda: bound.links[0].sock is not None, what="the replica to bind")
        endpoint = bound.links[0].sock.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with dispatcher(connect=[endpoint]) as d, \
                worker(RedChannel(), connect=[d.bound_endpoint], replica_id="connects"):
            joined(d, 2)
            for seq in range(1, 41):
                d.submit(frame, seq, 0.0)
                assert d.wait_for(seq, 5.0).seq == seq
            assert set(d.stats()["masks_by_replica"]) == {"binds", "connects"}


# -- credit and ordering -------------------------------------------------------------------------

def test_replica_gets_no_more_than_its_credit(frame):
    with dispatcher() as d, manual(d.bound_endpoint, capacity=2) as replica:
        replica.say_hello()
        joined(d)
        for seq in range(1, 6):
            d.submit(frame, seq, 0.0)
            time.sleep(0.02)
        got = [replica.recv(0.3, SegmentRequest) for _ in range(3)]
        assert [r.seq for r in got if r] == [1, 2]      # two in flight, nothing more
        assert d.stats()["per_replica"][0]["credit"] == 0


def test_newer_submit_replaces_an_unsent_frame(frame):
    with dispatcher() as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        d.submit(frame, 1, 0.0)
        first = replica.recv(kind=SegmentRequest)
        d.submit(frame, 2, 0.0)            # replica busy: 2 waits ...
        d.submit(frame, 3, 0.0)            # ... and is replaced by 3
        time.sleep(0.05)
        assert d.stats()["dropped_busy"] == 1
        replica.answer(first)
        assert replica.recv(kind=SegmentRequest).seq == 3    # newest frame first


def test_stale_mask_is_dropped(frame):
    with dispatcher() as d, manual(d.bound_endpoint, capacity=2) as replica:
        replica.say_hello()
        joined(d)
        d.submit(frame, 1, 0.0)
        one = replica.recv(kind=SegmentRequest)
        d.submit(frame, 2, 0.0)
        two = replica.recv(kind=SegmentRequest)
        replica.answer(two)
        assert d.wait_for(2, 2.0).seq == 2
        replica.answer(one)                # arrives late: older than the applied mask
        wait_until(lambda: d.stats()["stale_dropped"] == 1, what="the stale mask to be dropped")
        assert d.latest().seq == 2 and d.stats()["masks_applied"] == 1


def test_reply_for_a_frame_never_sent_is_ignored(frame):
    with dispatcher() as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        d.submit(frame, 1, 0.0)
        request = replica.recv(kind=SegmentRequest)
        replica.answer(request, seq=999)   # a forged "newer" mask must never be applied
        wait_until(lambda: d.stats()["unexpected_replies"] == 1, what="the forged reply to be counted")
        assert d.latest() is None


def test_load_is_shared_between_replicas(frame):
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint], replica_id="a"), \
            worker(RedChannel(), connect=[d.bound_endpoint], replica_id="b"):
        joined(d, 2)
        for seq in range(1, 101):
            d.submit(frame, seq, 0.0)
            d.wait_for(seq, 1.0)
        counts = d.stats()["masks_by_replica"]
        assert min(counts["a"], counts["b"]) >= 30, counts


# -- liveness --------------------------------------------------------------------------------------

def test_silent_replica_is_dropped_after_liveness(frame):
    with dispatcher(**FAST_BEAT) as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        d.submit(frame, 1, 0.0)
        assert replica.recv(kind=SegmentRequest) is not None
        started = time.monotonic()
        wait_until(lambda: d.stats()["replicas"] == 0, what="the silent replica to be dropped")
        assert time.monotonic() - started < 0.6       # expiry 0.2 s, plus scheduling slack
        assert d.stats()["lost_inflight"] == 1


def test_default_liveness_drops_a_silent_replica_within_a_second(frame):
    with dispatcher() as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        started = time.monotonic()
        wait_until(lambda: d.stats()["replicas"] == 0, timeout_s=3.0, what="the silent replica to be dropped")
        assert time.monotonic() - started <= 1.0


def test_heartbeats_keep_an_idle_replica(frame):
    with dispatcher(**FAST_BEAT) as d, worker(RedChannel(), connect=[d.bound_endpoint], **FAST_BEAT):
        joined(d)
        time.sleep(0.6)                   # three expiry periods with no frames at all
        assert d.stats()["replicas"] == 1


def test_unknown_replica_is_asked_to_say_hello_again():
    with dispatcher() as d, manual(d.bound_endpoint) as replica:
        replica.send(Heartbeat(50))
        error = replica.recv(kind=Error)
        assert error is not None and error.code == "unknown-replica"


def test_worker_rejoins_a_restarted_sink(frame):
    with dispatcher(**FAST_BEAT) as d:
        endpoint = d.bound_endpoint
    with worker(RedChannel(), connect=[endpoint], **FAST_BEAT):
        with Dispatcher(bind=[endpoint], **FAST_BEAT) as first:
            first.start()
            joined(first)
        with Dispatcher(bind=[endpoint], **FAST_BEAT) as second:   # same address, new sink
            second.start()
            joined(second)
            second.submit(frame, 1, 0.0)
            assert second.wait_for(1, 5.0) is not None


def test_late_frames_are_given_up(frame):
    with dispatcher(request_timeout_s=0.2) as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        d.submit(frame, 1, 0.0)
        assert replica.recv(kind=SegmentRequest).seq == 1
        deadline = time.monotonic() + 2.0
        while d.stats()["timed_out"] == 0 and time.monotonic() < deadline:
            replica.send(Heartbeat(50))    # alive, but never answers
            time.sleep(0.05)
        assert d.stats()["timed_out"] == 1
        d.submit(frame, 2, 0.0)            # the credit came back
        assert replica.recv(kind=SegmentRequest).seq == 2


def test_goodbye_finishes_work_in_flight(frame):
    with dispatcher() as d:
        with worker(RedChannel(), connect=[d.bound_endpoint], test_delay_ms=200):
            joined(d)
            d.submit(frame, 1, 0.0)
            wait_until(lambda: d.stats()["sent"] == 1, what="the frame to be sent")
        # the worker said goodbye and still delivered its frame before leaving (the mask may still be
        # on its way through the dispatcher's I/O thread when the worker process has gone)
        wait_until(lambda: d.latest() is not None, what="the frame in flight to be answered")
        assert d.latest().seq == 1
        wait_until(lambda: d.stats()["replicas"] == 0, what="the replica to leave")
        assert d.stats()["lost_inflight"] == 0


# -- refusal and bad input ----------------------------------------------------------------------------

def test_replica_with_another_input_size_is_refused(frame):
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint]), \
            manual(d.bound_endpoint, width=W * 2) as other:
        joined(d)
        other.say_hello()
        error = other.recv(kind=Error)
        assert error is not None and error.code == "refused" and "red" in error.message
        assert d.stats()["replicas"] == 1 and d.stats()["refused"] == 1
        assert d.input_spec == InputSpec(W, H, "stretch")


def test_wrong_size_frame_is_not_sent(frame):
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint]):
        joined(d)
        assert not d.submit(cv2.resize(frame, (W + 2, H)), 1, 0.0)
        assert not d.submit(frame[..., 0], 2, 0.0)
        assert d.stats()["wrong_size"] == 2 and d.stats()["sent"] == 0


def test_bad_messages_are_counted_and_the_replica_keeps_working(frame):
    with dispatcher() as d, manual(d.bound_endpoint) as replica:
        replica.say_hello()
        joined(d)
        garbage = [b"", b"\xc1", b"junk" * 100, protocol.encode(Goodbye("x"))[:-2],
                   protocol.encode(Hello("red", W, H, "stretch", 1, "r", 50)).replace(
                       b"\xa1v" + bytes([protocol.PROTOCOL_VERSION]), b"\xa1v\x7f", 1),   # unknown version
                   protocol.encode_request(frame, 1, 0.0)]         # a request: wrong direction
        for payload in garbage:
            replica.sock.send(payload)
        replica.sock.socket.send_multipart([b"two", b"parts"])
        wait_until(lambda: d.stats()["bad_messages"] == len(garbage) + 1, what="bad messages to be counted")
        d.submit(frame, 1, 0.0)
        request = replica.recv(kind=SegmentRequest)
        mask = np.zeros((H + 1, W), np.uint8)             # wrong dimensions for frame 1
        replica.sock.send(protocol.encode_mask(mask, request.seq, 1.0, "r"))
        wait_until(lambda: d.stats()["bad_messages"] == len(garbage) + 2, what="the wrong-size mask")
        assert d.latest() is None
        d.submit(frame, 2, 0.0)
        replica.answer(replica.recv(kind=SegmentRequest))
        assert d.wait_for(2, 2.0).seq == 2


def test_worker_answers_bad_requests_with_an_error(frame):
    with worker(RedChannel(), bind=["tcp://127.0.0.1:*"]) as w:
        wait_until(lambda: w.links[0].sock is not None, what="the replica to bind")
        endpoint = w.links[0].sock.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with SinkSocket(bind=[], connect=[endpoint]) as sink:
            identity = None
            deadline = time.monotonic() + 3
            while identity is None and time.monotonic() < deadline:
                if sink.socket.poll(50):
                    identity, parts = sink.recv()
            assert isinstance(protocol.decode(parts[0]), Hello)
            big = cv2.resize(frame, (W * 2, H))
            sink.send(identity, protocol.encode_request(big, 1, 0.0))
            answers = []
            deadline = time.monotonic() + 3
            while not answers and time.monotonic() < deadline:
                if sink.socket.poll(50):
                    message = protocol.decode(sink.recv()[1][0])
                    if isinstance(message, Error):
                        answers.append(message)
            assert answers and answers[0].code == "bad-request" and answers[0].seq == 1
            assert w.counts["bad_messages"] == 1


def test_worker_queue_stays_bounded_when_sessions_reset(frame):
    class SlowRed(RedChannel):
        def segment(self, rgb):
            time.sleep(0.05)
            return super().segment(rgb)

    with worker(SlowRed(), bind=["tcp://127.0.0.1:*"], capacity=1) as w:
        wait_until(lambda: w.links[0].sock is not None, what="the replica to bind")
        endpoint = w.links[0].sock.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        with SinkSocket(bind=[], connect=[endpoint]) as sink:
            identity = None
            while identity is None:
                assert sink.socket.poll(3000)
                identity = sink.recv()[0]
            reset = protocol.encode(Error("unknown-replica", "say hello again", -1))
            for seq in range(1, 21):      # each "unknown-replica" starts a new session on the worker
                sink.send(identity, protocol.encode_request(frame, seq, 0.0))
                sink.send(identity, reset)
            time.sleep(0.2)
            assert w._outstanding <= 1
            assert w.counts["busy"] >= 17


# -- configuration errors --------------------------------------------------------------------------

def test_plain_text_beyond_loopback_needs_insecure():
    with pytest.raises(TransportError, match="--insecure"):
        Dispatcher(bind=["tcp://*:5599"])
    with pytest.raises(TransportError, match="--curve-dir"):
        Dispatcher(bind=[], connect=["tcp://192.168.1.20:5556"])


def test_compose_network_allows_plain_text_to_service_names(caplog):
    Dispatcher(bind=["tcp://*:5599"], compose_network=True).close()
    Dispatcher(bind=[], connect=["tcp://segmenter:5556"], compose_network=True).close()
    with pytest.raises(TransportError):
        Dispatcher(bind=[], connect=["tcp://gpu.example.org:5556"], compose_network=True)
    with caplog.at_level("WARNING"):
        Dispatcher(bind=[], connect=["tcp://gpu.example.org:5556"], insecure=True).close()
    assert "PLAIN TEXT" in caplog.text


@pytest.mark.parametrize("bind", [["5555"], ["tcp://127.0.0.1"], ["http://x:1"], ["tcp://127.0.0.1:99999"]])
def test_bad_endpoint_names_the_expected_form(bind):
    with pytest.raises(TransportError, match="tcp://"):
        Dispatcher(bind=bind)


def test_port_in_use_fails_at_start():
    with dispatcher() as d:
        second = Dispatcher(bind=[d.bound_endpoint])
        with pytest.raises(TransportError, match="in use"):
            second.start()
        second.close()


def test_close_leaves_no_threads_behind(frame):
    before = set(threading.enumerate())
    with dispatcher() as d, worker(RedChannel(), connect=[d.bound_endpoint]):
        joined(d)
        d.submit(frame, 1, 0.0)
        d.wait_for(1, 5.0)
    time.sleep(0.05)
    assert set(threading.enumerate()) <= before


# -- which replica gets the next frame --------------------------------------------------------------

def _replica(name: str, *, round_trip_s: float, last_sent: float, capacity: int = 1, in_flight: int = 0):
    from capture_sink.dispatch import InFlight, Replica
    r = Replica(name.encode(), name, "red", InputSpec(W, H), capacity, expiry=1e9, lifetime_s=1.0,
                round_trip_s=round_trip_s, last_sent=last_sent)
    r.in_flight = {i: InFlight(i, 0.0, W, H, 0.0) for i in range(in_flight)}
    return r


def test_equal_replicas_take_turns():
    from capture_sink.dispatch import ReplicaPool
    pool = ReplicaPool()
    for name, sent in (("a", 3.0), ("b", 1.0), ("c", 2.0)):
        pool.ready(_replica(name, round_trip_s=0.008 + 0.002 * sent, last_sent=sent))
    assert pool.next(now=3.0).replica_id == "b"          # idle longest among the equally quick


def test_slow_replica_gets_frames_only_while_quick_ones_are_busy():
    from capture_sink.dispatch import ReplicaPool
    pool = ReplicaPool()
    pool.ready(_replica("quick", round_trip_s=0.008, last_sent=10.0))
    pool.ready(_replica("slow", round_trip_s=0.150, last_sent=9.9, capacity=2))
    assert pool.next(now=10.0).replica_id == "quick"
    pool.get(b"quick").in_flight = {1: None}              # quick is busy: slow is better than nothing
    assert pool.next(now=10.0).replica_id == "slow"
    pool.get(b"slow").in_flight = {2: None, 3: None}
    assert pool.next(now=10.0) is None                    # nobody has credit: the frame waits


def test_a_slow_estimate_fades_while_the_replica_is_idle():
    from capture_sink.dispatch import ReplicaPool
    pool = ReplicaPool()
    pool.ready(_replica("quick", round_trip_s=0.008, last_sent=100.0))
    pool.ready(_replica("hiccup", round_trip_s=0.100, last_sent=90.0))
    assert pool.next(now=100.0).replica_id == "hiccup"    # idle 10 s: tried again
    pool.get(b"hiccup").last_sent = 99.9
    assert pool.next(now=100.0).replica_id == "quick"


def test_leaving_replica_gets_no_frames():
    from capture_sink.dispatch import ReplicaPool
    pool = ReplicaPool()
    leaving = _replica("leaving", round_trip_s=0.0, last_sent=0.0)
    leaving.leaving = True
    pool.ready(leaving)
    assert pool.next(now=1.0) is None


def test_poll_timeouts_round_up_so_a_loop_never_wakes_before_its_deadline():
    now = 100.0
    assert poll_timeout_ms(now + 0.0009, now) == 1          # pyzmq would truncate 0.9 ms to 0: a spin
    assert poll_timeout_ms(now + 0.0021, now) == 3
    assert poll_timeout_ms(now + 0.002, now) == 2
    assert poll_timeout_ms(now - 1.0, now) == 0              # overdue: poll and go on at once


def test_neither_loop_spins_between_heartbeats(monkeypatch):
    """The sink's dispatcher and a segmenter, idle but heartbeating every 10 ms: a few polls per
    beat each. With a float timeout truncated by pyzmq, every deadline ended in a burst of empty
    polls (thousands a second)."""
    polls: dict[str, int] = {}
    real_poll = zmq.Poller.poll

    def counting_poll(self, timeout=None):
        name = threading.current_thread().name
        polls[name] = polls.get(name, 0) + 1
        return real_poll(self, timeout)

    beat = {"heartbeat_interval_s": 0.01, "heartbeat_liveness": 20}
    with dispatcher(**beat) as d, worker(RedChannel(), connect=[d.bound_endpoint], **beat) as w:
        wait_until(lambda: d.stats()["replicas"] == 1, what="the replica to join")
        monkeypatch.setattr(zmq.Poller, "poll", counting_poll)
        time.sleep(1.0)
        monkeypatch.setattr(zmq.Poller, "poll", real_poll)
        assert w.counts["bad_messages"] == 0
    assert polls.get("holocam-dispatch", 0) > 50, polls       # it did run: ~100 beats a second each way
    for name, count in polls.items():
        assert count < 600, f"{name} polled {count} times in 1 s of 10 ms heartbeats: it spins ({polls})"
