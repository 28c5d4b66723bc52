"""MaskGate on its own: which masks count as valid, what the output is without one, what is logged."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import skimage.data

from capture_sink.backgrounds import create_background
from capture_sink.dispatch import MaskResult
from capture_sink.failclosed import MaskGate

H, W = 360, 640


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (W, H))


def mask_from(capture_time: float, seq: int = 1) -> MaskResult:
    return MaskResult(seq, capture_time, np.full((64, 64), 255, np.uint8), "r1", 2.0, capture_time)


def test_a_mask_is_valid_up_to_the_max_age_of_the_frame_it_is_used_for() -> None:
    gate, background = MaskGate("hide", 500), create_background("default")
    assert gate.admit(mask_from(10.0), 10.499, background) is not None
    assert gate.state() == {"shown": "composited", "reason": ""}
    assert gate.admit(mask_from(10.0), 10.501, background) is None
    assert "501 ms old (limit 500 ms)" in gate.reason
    assert gate.admit(None, 11.0, background, segmenting=False) is None
    assert gate.reason == "segmenting is off"


def test_each_state_is_logged_once_not_every_frame(caplog: pytest.LogCaptureFixture) -> None:
    gate, background = MaskGate("hide", 500), create_background("default")
    with caplog.at_level(logging.INFO, logger="capture_sink.failclosed"):
        for i in range(30):
            gate.admit(None, float(i), background)                    # waiting, no mask yet
        for i in range(30):
            gate.admit(mask_from(100.0 + i), 100.0 + i, background)  # flowing
        for i in range(30):
            gate.admit(mask_from(200.0), 201.0 + i, background)      # stale, older and older
        assert gate.admit(mask_from(300.0), 300.0, background) is not None
        assert gate.resumed                                           # the app resets its average here
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "no mask yet" in lines[0] and lines[1].endswith("masks flowing: compositing the person")
    assert "ms old" in lines[2] and "masks flowing again" in lines[3]


def test_without_a_mask_the_output_is_the_background_and_a_small_caption(frame) -> None:
    gate, background = MaskGate("hide", 500), create_background("default")
    expected = background.render(frame).copy()
    out = gate.fallback(frame, background)
    rows, cols = gate.caption.box
    changed = np.abs(out.astype(int) - expected).max(axis=2) > 0
    assert changed[rows, cols].mean() > 0.3                           # the caption is there ...
    changed[rows, cols] = False
    assert not changed.any()                                          # ... and nothing else differs
    assert (rows.stop - rows.start) * (cols.stop - cols.start) < 0.03 * H * W   # small
    assert not np.shares_memory(out, background.render(frame))        # the shared buffer is untouched


def test_no_mask_blur_blurs_away_all_detail(frame) -> None:
    gate = MaskGate("blur", 500)
    out = gate.fallback(frame, create_background("default"))
    detail = lambda image: cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
    assert detail(out[: H - 60]) < 0.01 * detail(frame)


def test_with_background_none_or_no_mask_camera_the_camera_is_used_as_asked(frame) -> None:
    none = create_background("none")
    gate = MaskGate("hide", 500)
    assert gate.admit(mask_from(0.0), 60.0, none) is not None        # the room is shown anyway
    assert gate.fallback(frame, none) is frame
    camera = MaskGate("camera", 500)
    assert camera.admit(mask_from(0.0), 60.0, create_background("default")) is not None
    assert camera.fallback(frame, create_background("default")) is frame
