"""CurveZMQ between a real sink and real segmenter processes (keys from `python -m shared.keys`)."""

from __future__ import annotations

import time

import pytest

from capture_sink.dispatch import Dispatcher
from helpers_transport import free_port, prepared, wait_for_replicas, wait_until
from shared.keys import sink_keys

pytestmark = pytest.mark.slow


def test_right_keys_serve_in_both_modes_and_strangers_get_nothing(curve_dir, segmenter_process):
    sink_port, replica_port = free_port(), free_port()
    sink_endpoint = f"tcp://127.0.0.1:{sink_port}"
    good = segmenter_process.start(connect=[sink_endpoint], replica_id="good",
                                   extra=["--curve-dir", str(curve_dir)])
    binds = segmenter_process.start(bind=[f"tcp://127.0.0.1:{replica_port}"], replica_id="binds",
                                    extra=["--curve-dir", str(curve_dir)])
    stranger = segmenter_process.start(connect=[sink_endpoint], replica_id="stranger",
                                       extra=["--curve-dir", str(curve_dir / "stranger")])
    plain = segmenter_process.start(connect=[sink_endpoint], replica_id="plain")
    with Dispatcher(bind=[sink_endpoint], connect=[f"tcp://127.0.0.1:{replica_port}"],
                    curve=sink_keys(curve_dir)) as d:
        d.start()
        wait_for_replicas(d, 2, [good, binds])
        wait_until(lambda: "serving" in stranger.log() and "serving" in plain.log(), 60.0,
                   "the stranger and the plain segmenter to be up")
        frame = prepared("astronaut", d.input_spec)
        start, seq = time.monotonic(), 0
        while time.monotonic() - start < 2.0:      # frames on offer while the strangers knock
            seq += 1
            d.submit(frame, seq, time.monotonic())
            d.wait_for(seq, 0.1)
        stats = d.stats()
    assert set(stats["masks_by_replica"]) == {"good", "binds"}
    assert stats["replicas"] == 2
    assert "refused our key" in stranger.log()
    assert "one side uses keys" in plain.log()
    for process in (stranger, plain):
        assert "registered with the sink" not in process.log()
