"""The alpha handed to the native passes at the refiner's working size (capture_sink/scaled_alpha.py):
each pass scales every row up itself, exactly as the refiner's upsample does, so the frames are the
same bytes as with the frame-sized alpha; on every build, at 2x, 3x and 4x, for a person, empty and
full rows, lone pixels and values the upsample rounds away; and the sink takes that path only on the
virtual camera over a still background."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from capture_sink.composite import Compositor
from capture_sink.effects import create_effect
from capture_sink.frame_pool import FramePool
from capture_sink.native import library, timing
from capture_sink.scaled_alpha import ScaledAlpha, frame_alpha, pass_alpha
from helpers_native import fresh_native_choices  # noqa: F401 (autouse: no native decision leaks between tests)


def _small_alpha(height: int, width: int, seed: int) -> np.ndarray:
    """A soft person with odd edges, an empty row, a full row, lone pixels and faint values."""
    rng = np.random.default_rng(seed)
    alpha = np.zeros((height, width), np.uint8)
    cv2.ellipse(alpha, (width // 2, height), (width // 4 + 1, int(height * 0.7)), 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5)
    alpha[rng.integers(0, height, 6), rng.integers(0, width, 6)] = rng.integers(1, 4, 6)   # faint: may round to 0
    alpha[1] = 0
    alpha[-2] = 255
    alpha[height // 3, 0] = 200                 # a lone pixel at the left edge
    alpha[height // 4, width - 1] = 90          # and at the right
    return alpha


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("k, small", [(2, (36, 64)), (3, (15, 22)), (4, (9, 14)), (2, (360, 640))])
def test_the_passes_scale_a_small_alpha_as_the_upsample_does(isa, k, small):
    ops = library.build_for(isa)
    size = (small[0] * k, small[1] * k)
    frame, background, _ = timing.scene(*size)
    alpha_small = _small_alpha(*small, seed=k)
    alpha = np.empty(size, np.uint8)
    ops.upsample(alpha_small, alpha)
    assert (alpha_small > 0).sum() > (alpha > 0).sum() / (k * k) * 0.5    # the scene shows a person
    lut = create_effect("hologram")._full_lut
    weights = np.empty((size[0], 3), np.uint16)
    weights[:] = (12000, 5000, 20000)
    still = np.empty((*size, 2), np.uint8)
    ops.bgr_to_yuyv(background, still)
    inner_small = alpha_small.copy()
    inner_small[:, :2] = inner_small[:, -2:] = 0          # the person clear of both sides
    inner = np.empty(size, np.uint8)
    ops.upsample(inner_small, inner)
    for channels, bg_yuyv in ((3, None), (2, None), (2, still)):
        want, got = np.empty((*size, channels), np.uint8), np.empty((*size, channels), np.uint8)
        for shift, (full, part) in itertools.product((5, 0), ((alpha, alpha_small), (inner, inner_small))):
            # shift 0 (no ghost): the tint's columns are exactly the person's then
            ops.hologram_composite(frame, lut, shift, weights, background, full, want, bg_yuyv)
            ops.hologram_composite(frame, lut, shift, weights, background, part, got, bg_yuyv)
            np.testing.assert_array_equal(got, want)
        ops.composite(frame, background, alpha, want, bg_yuyv)
        ops.composite(frame, background, alpha_small, got, bg_yuyv)
        np.testing.assert_array_equal(got, want)
    # with a reused frame too (capture_sink/frame_pool.py): the spans follow the scaled rows
    pool_a, pool_b = FramePool(), FramePool()
    for shift in (0, 3, -2):
        moved = np.roll(alpha_small, shift, axis=1)
        full = np.empty(size, np.uint8)
        ops.upsample(moved, full)
        out_a, spans_a = pool_a.take(still)
        out_b, spans_b = pool_b.take(still)
        ops.composite(frame, background, full, out_a, still, spans_a)
        ops.composite(frame, background, moved, out_b, still, spans_b)
        np.testing.assert_array_equal(out_b, out_a)
        del out_a, out_b


def test_an_alpha_of_another_size_is_refused():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, _ = timing.scene(36, 64)
    out = np.empty_like(frame)
    for shape in ((18, 31), (12, 21), (7, 13), (36, 63), (5, 8)):     # not 1/2, 1/3 or 1/4 both ways; 1/5
        with pytest.raises(ValueError, match="alpha must be"):
            ops.composite(frame, background, np.zeros(shape, np.uint8), out)


def test_a_scaled_alpha_makes_its_frame_sized_alpha_once():
    calls = []
    small = np.full((4, 6), 9, np.uint8)
    alpha = ScaledAlpha(small, 2, lambda m: (calls.append(1), cv2.resize(m, (12, 8)))[1])
    assert alpha.shape == (8, 12) and pass_alpha(alpha) is small
    first = frame_alpha(alpha)
    assert first.shape == (8, 12) and frame_alpha(alpha) is first and calls == [1]
    plain = np.zeros((8, 12), np.uint8)
    assert frame_alpha(plain) is plain and pass_alpha(plain) is plain


@pytest.mark.parametrize("effect_name", ["hologram", "none"])
def test_the_sink_scales_the_alpha_in_the_pass_only_on_the_yuyv_path(monkeypatch, effect_name):
    from capture_sink.app import SinkApp
    from capture_sink.config import SinkConfig, validate
    from capture_sink.dispatch.mailbox import MaskResult
    from capture_sink.sources.base import Frame

    monkeypatch.setenv(library.ENABLE_ENV, "1")
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, _, alpha = timing.scene(720, 1280)        # the refiner works at 640x360: 2x to the frame
    mask = cv2.resize(alpha, (256, 144))
    result = MaskResult(seq=1, capture_time=0.0, mask=mask, replica_id="r", inference_ms=1.0, received_time=0.0)
    frames = {}
    for scaled_path in (False, True):
        app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False, background="#204060",
                                          effect=effect_name, preset="raw")))   # no EMA: frames comparable
        app.init_pipeline()
        if effect_name == "hologram":
            app.effect = create_effect("hologram", seed=4)
        monkeypatch.setattr(app, "_writers_take_yuyv", lambda: True)
        handed = []
        real = app.refiner.refine
        monkeypatch.setattr(app.refiner, "refine", lambda *a, **kw: handed.append(
            real(*a, **{**kw, "scaled": kw["scaled"] and scaled_path})) or handed[-1])
        frames[scaled_path] = app._compose(Frame(frame, 1, 0.0), result).copy()
        assert isinstance(handed[-1], ScaledAlpha) == scaled_path
        app.close()
    assert frames[True].shape == (720, 1280, 2)
    np.testing.assert_array_equal(frames[True], frames[False])


def test_the_refiner_hands_out_a_scaled_alpha_only_when_asked_and_native(monkeypatch):
    from capture_sink.refine import MaskRefiner

    frame, _, alpha = timing.scene(720, 1280)
    mask = cv2.resize(alpha, (256, 144))
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    if library.load() is None:
        pytest.skip("native passes unavailable: no C compiler")
    refiner = MaskRefiner()
    full = refiner.refine(mask, frame).copy()
    scaled = refiner.refine(mask, frame, scaled=True)
    assert isinstance(scaled, ScaledAlpha) and scaled.small.shape == (360, 640) and scaled.factor == 2
    np.testing.assert_array_equal(frame_alpha(scaled), full)         # the same mask twice: the EMA holds
    monkeypatch.setenv(library.ENABLE_ENV, "0")
    library.forget()
    assert isinstance(MaskRefiner().refine(mask, frame, scaled=True), np.ndarray)   # OpenCV's path: no pass takes it
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    library.forget()
    small = MaskRefiner().refine(mask, frame, scaled=True)
    out = Compositor().composite(frame, np.zeros_like(frame), small)       # BGR: the native pass takes it
    assert out.shape == (720, 1280, 3)
