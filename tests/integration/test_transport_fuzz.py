"""Fuzz the sink and a segmenter with >= 10,000 hostile messages each, over real sockets.

Both run as their own processes (the sink as tests/helpers_transport.py's sink process, the
segmenter as `python -m segmenter serve` with the real selfie model), so their RSS can be read
from /proc. Afterwards each must still serve the same mask for the same photo as before, with
memory growth bounded and the bad messages counted, and logged only at a limited rate.
"""

from __future__ import annotations

import re
import time

import cv2
import numpy as np
import pytest
import zmq

from helpers_transport import (SinkProcess, decode_mask, free_port, fuzz_messages, prepared, rss_kb, send_all,
                               wait_until)
from segmenter.model.base import InputSpec
from shared import protocol
from shared.protocol import Error, Goodbye, Heartbeat, Hello, MaskReply
from shared.transport import SinkSocket

FUZZ_COUNT = 10_000
WARMUP_COUNT = 1_000
RSS_LIMIT_KB = 16 * 1024        # growth allowed over 10,000 hostile messages (measured: 1-3 MB)
SPEC = InputSpec(256, 256, "stretch")

pytestmark = pytest.mark.slow


def sink_templates() -> list[bytes]:
    mask = np.zeros((SPEC.height, SPEC.width), np.uint8)
    cv2.circle(mask, (128, 110), 60, 255, -1)
    return [
        protocol.encode(Hello("selfie", SPEC.width, SPEC.height, "stretch", 2, "fuzz", 200)),
        protocol.encode(Heartbeat(200)),
        protocol.encode_mask(mask, 5, 3.0, "fuzz"),
        protocol.encode_mask(mask, 7, 3.0, "fuzz", encoding="png"),
        protocol.encode(Error("busy", "capacity is 1", 3)),
        protocol.encode(Goodbye("bye")),
    ]


def segmenter_templates() -> list[bytes]:
    frame = prepared("astronaut", SPEC)
    return [
        protocol.encode_request(frame, 11, 1.0, encoding="jpeg", jpeg_quality=60),
        protocol.encode_request(frame[:, :, ::-1], 12, 1.0, encoding="jpeg", jpeg_quality=30),
        protocol.encode_request(frame, 13, 1.0),
        protocol.encode(Heartbeat(200)),
        protocol.encode(Error("unknown-replica", "say hello again", -1)),
        protocol.encode(Goodbye("bye")),
    ]


def bad_lines(log: str) -> int:
    return len(re.findall(r"dropped a bad message", log))


def test_sink_survives_fuzzing(tmp_path, segmenter_process):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    sink = SinkProcess([endpoint], tmp_path / "sink.log")
    try:
        replica = segmenter_process.start(connect=[endpoint], replica_id="real")
        assert sink.call("wait_replicas", n=1)["ok"], replica.log()[-2000:]
        before = sink.call("segment", image="astronaut", seq=1)
        assert before["ok"] and before["replica_id"] == "real"

        context = zmq.Context()
        templates = sink_templates()
        messages = list(fuzz_messages(templates, WARMUP_COUNT + FUZZ_COUNT, seed=7))
        fuzzers = [context.socket(zmq.DEALER) for _ in range(2)]   # one says hello sometimes; both spray
        for f in fuzzers:
            f.setsockopt(zmq.LINGER, 0)
            f.connect(endpoint)
        for parts in messages[:WARMUP_COUNT]:
            send_all(fuzzers[0], parts)
        time.sleep(0.5)
        rss_before = rss_kb(sink.pid)
        for i, parts in enumerate(messages[WARMUP_COUNT:]):
            send_all(fuzzers[i % 2], parts)
            for f in fuzzers:            # read what the sink answers, as a peer would
                while f.poll(0):
                    f.recv_multipart()
        sent_before_close = sink.call("stats")
        for f in fuzzers:
            f.close()
        context.term()
        # the fuzzers' hellos made them "replicas": they must be dropped as silent, and only then
        # can the real replica be the only one again
        wait_until(lambda: sink.call("stats")["replicas"] == 1, 5.0, "the fuzzers to be dropped")
        rss_after = rss_kb(sink.pid)
        after = sink.call("segment", image="astronaut", seq=100_000, timeout_s=15.0)   # slack on a loaded CI machine
        stats = sink.call("stats")
    finally:
        sink.stop()
    assert after["ok"], after
    assert np.array_equal(decode_mask(after), decode_mask(before))
    assert rss_after - rss_before < RSS_LIMIT_KB, f"sink RSS grew by {rss_after - rss_before} kB"
    assert sent_before_close["bad_messages"] > FUZZ_COUNT // 2
    assert stats["masks_by_replica"]["real"] >= 2
    log = (tmp_path / "sink.log").read_text()
    assert 0 < bad_lines(log) < 100, "bad messages must be logged, rate-limited"


def test_segmenter_survives_fuzzing(segmenter_process, selfie_reference):
    port = free_port()
    replica = segmenter_process.start(connect=[f"tcp://127.0.0.1:{port}"], replica_id="fuzzed")
    frame = prepared("astronaut", SPEC)
    beat = protocol.encode(Heartbeat(200))
    with SinkSocket(bind=[f"tcp://127.0.0.1:{port}"], connect=[]) as sink:
        identity = None
        deadline = time.monotonic() + 60
        while identity is None:
            assert time.monotonic() < deadline and replica.alive(), replica.log()[-2000:]
            if sink.socket.poll(100):
                who, parts = sink.recv()
                if isinstance(protocol.decode(parts[0]), Hello):
                    identity = who
        sink.send(identity, beat)

        def segment(seq: int) -> np.ndarray:
            request = protocol.encode_request(frame, seq, 1.0)
            sink.send(identity, request)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if sink.socket.poll(50):
                    who, parts = sink.recv()
                    message = protocol.decode(parts[0])
                    if isinstance(message, MaskReply) and message.seq == seq:
                        return protocol.reply_mask(message).copy()
                    if isinstance(message, Error) and message.seq == seq and message.code == "busy":
                        time.sleep(0.02)           # still finishing fuzzed work: ask again
                        sink.send(identity, request)
                sink.send(identity, beat)
            raise AssertionError(f"no mask for frame {seq}:\n{replica.log()[-2000:]}")

        before = segment(1)
        messages = list(fuzz_messages(segmenter_templates(), WARMUP_COUNT + FUZZ_COUNT, seed=11))

        def spray(batch) -> None:
            for i, parts in enumerate(batch):
                send_all(sink.socket, parts, identity=identity)
                if i % 100 == 0:
                    send_all(sink.socket, [beat], identity=identity)   # keep the session alive
                while sink.socket.poll(0):
                    sink.recv()

        spray(messages[:WARMUP_COUNT])
        time.sleep(0.5)
        rss_before = rss_kb(replica.pid)
        spray(messages[WARMUP_COUNT:])
        time.sleep(0.5)
        rss_after = rss_kb(replica.pid)
        # ROUTER_MANDATORY: had the segmenter dropped this session, the sends above would have raised
        after = segment(2)
    assert replica.stop() == 0
    assert np.array_equal(after, before)
    assert np.abs(before.astype(np.int16) - selfie_reference.segment(frame)).mean() <= 1.0
    assert rss_after - rss_before < RSS_LIMIT_KB, f"segmenter RSS grew by {rss_after - rss_before} kB"
    log = replica.log()
    counted = int(re.search(r"(\d+) bad messages", log).group(1))
    assert counted > FUZZ_COUNT // 2
    assert 0 < bad_lines(log) < 100, "bad messages must be logged, rate-limited"


def test_oversized_messages_are_refused_by_the_socket(tmp_path, segmenter_process):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    sink = SinkProcess([endpoint], tmp_path / "sink.log")
    try:
        segmenter_process.start(connect=[endpoint], replica_id="real")
        assert sink.call("wait_replicas", n=1)["ok"]
        before = sink.call("segment", image="camera", seq=1)
        rss_before = rss_kb(sink.pid)
        context = zmq.Context()
        big = b"\x00" * (protocol.MAX_REPLY_BYTES + 1)   # over the sink's MAXMSGSIZE
        for _ in range(20):
            attacker = context.socket(zmq.DEALER)
            attacker.setsockopt(zmq.LINGER, 1000)
            attacker.connect(endpoint)
            attacker.send(big)
            attacker.close()
        context.term()
        time.sleep(0.5)
        rss_after = rss_kb(sink.pid)
        after = sink.call("segment", image="camera", seq=2)
        stats = sink.call("stats")
    finally:
        sink.stop()
    assert after["ok"] and np.array_equal(decode_mask(after), decode_mask(before))
    assert rss_after - rss_before < 8 * 1024
    assert stats["bad_messages"] == 0       # libzmq refused them before they became messages
