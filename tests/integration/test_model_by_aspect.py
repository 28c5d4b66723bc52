"""A real replica serving the default model (selfie-auto) behind a real Dispatcher: the sink learns
the "aspect" spec from the hello, and 16:9 and 4:3 frames come back as masks of their own grid."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bench.frames import photo, scale_to_fill
from capture_sink.dispatch import Dispatcher
from helpers_transport import free_port, wait_for_replicas
from segmenter.model import DEFAULT_MODEL, create_model
from shared.resize import prepare_input

pytestmark = pytest.mark.slow


def test_a_default_replica_answers_wide_and_4_3_frames_on_their_grids(segmenter_process):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    replica = segmenter_process.start(connect=[endpoint], replica_id="auto-0", model=DEFAULT_MODEL)
    wide, square = create_model("selfie-landscape", threads=1), create_model("selfie", threads=1)
    with Dispatcher(bind=[endpoint]) as d:
        d.start()
        wait_for_replicas(d, 1, [replica])
        assert d.input_spec.resize == "aspect"
        for seq, (size, reference) in enumerate((((1280, 720), wide), ((640, 480), square)), start=1):
            rgb = prepare_input(scale_to_fill(photo("hopper"), *size), d.input_spec)
            assert d.submit(rgb, seq, time.monotonic())
            result = d.wait_for(seq, 10.0)
            assert result is not None and result.seq == seq
            expected = reference.segment(rgb)
            assert result.mask.shape == expected.shape == rgb.shape[:2]
            assert np.abs(result.mask.astype(np.int16) - expected).mean() <= 1.0
