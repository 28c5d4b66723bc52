"""Reused YUYV output frames over a still background (capture_sink/frame_pool.py): the passes that
write only what changed give the same frames as a fresh frame written whole, on every native build
and for a person who moves, leaves and comes back; a frame still held anywhere is never written
again; bad spans are refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from capture_sink.composite import Compositor
from capture_sink.effects import create_effect
from capture_sink.frame_pool import MAX_FRAMES, FramePool
from capture_sink.native import library, timing
from helpers_native import fresh_native_choices  # noqa: F401 (autouse: no native decision leaks between tests)


def _still(ops, background: np.ndarray) -> np.ndarray:
    out = np.empty((*background.shape[:2], 2), np.uint8)
    ops.bgr_to_yuyv(background, out)
    out.flags.writeable = False
    return out


def _moving_alphas(height: int, width: int, count: int) -> list[np.ndarray]:
    """A soft person that walks right and back, vanishes for a frame, fills a frame, and has
    spans that start and end on odd columns."""
    rng = np.random.default_rng(5)
    alphas = []
    for i in range(count):
        alpha = np.zeros((height, width), np.uint8)
        centre = width // 3 + (i * width) // (2 * count) if i < count // 2 else width - (i * width) // (2 * count)
        cv2.ellipse(alpha, (centre, height), (width // 5 + i % 3, int(height * 0.7)), 0, 0, 360, 255, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2)
        alpha[rng.integers(0, height), rng.integers(0, width)] = 77    # a lone pixel somewhere
        alphas.append(alpha)
    alphas[3][:] = 0             # nobody there
    alphas[4][:] = 0
    alphas[6][:] = 255           # the person fills the frame
    return alphas


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("effect_name", ["hologram", "none"])
@pytest.mark.parametrize("size", [(72, 128), (61, 98)])
def test_reused_frames_equal_fresh_ones(isa, effect_name, size):
    ops = library.build_for(isa)
    frame, background, _ = timing.scene(*size)
    background.flags.writeable = False
    still = _still(ops, background)
    pool = FramePool()
    lut = create_effect("hologram")._full_lut
    weights = np.empty((size[0], 3), np.uint16)
    weights[:] = (12000, 5000, 20000)        # the ghost's row weights, fixed here
    held = None
    for alpha in _moving_alphas(*size, 12):
        fresh = np.empty((*size, 2), np.uint8)
        if effect_name == "hologram":
            ops.hologram_composite(frame, lut, 5, weights, background, alpha, fresh, still)
            out, spans = pool.take(still)
            ops.hologram_composite(frame, lut, 5, weights, background, alpha, out, still, spans)
        else:
            ops.composite(frame, background, alpha, fresh, still)
            out, spans = pool.take(still)
            ops.composite(frame, background, alpha, out, still, spans)
        assert spans is not None
        np.testing.assert_array_equal(out, fresh)
        out.flags.writeable = False
        held = out          # one frame held at a time (as a writer holds it): the pool alternates
        del out
    assert pool.reused >= 9 and pool.made <= 2
    assert held is not None


def test_a_frame_held_anywhere_is_not_handed_out_again():
    background = np.zeros((8, 16, 2), np.uint8)
    pool = FramePool()
    first, _ = pool.take(background)
    second, _ = pool.take(background)            # `first` is still held here
    assert second is not first
    view = first[2:4]                            # a view keeps its frame
    del first
    third, _ = pool.take(background)
    assert third is not view.base and third is not second
    del view
    again, _ = pool.take(background)
    assert pool.reused == 1 and again.flags.writeable


def test_a_full_pool_gives_fresh_frames_without_spans():
    background = np.full((8, 16, 2), 9, np.uint8)
    pool = FramePool()
    held = [pool.take(background)[0] for _ in range(MAX_FRAMES)]
    extra, spans = pool.take(background)
    assert spans is None and all(extra is not frame for frame in held)
    assert all((frame == 9).all() for frame in held)    # a new pool frame holds the background


def test_another_background_starts_over():
    pool = FramePool()
    one = np.full((8, 16, 2), 1, np.uint8)
    frame, spans = pool.take(one)
    spans[:] = (2, 6)
    del frame
    two = np.full((8, 16, 2), 2, np.uint8)
    frame, spans = pool.take(two)
    assert (frame == 2).all() and not spans.any() and pool.reused == 0


def test_bad_spans_are_refused():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, alpha = timing.scene(20, 32)
    still = _still(ops, background)
    out = np.empty((20, 32, 2), np.uint8)
    for bad_row in ((1, 4), (0, 34), (-2, 4), (6, 4)):      # odd, past the row, negative, reversed
        spans = np.zeros((20, 2), np.int32)
        spans[7] = bad_row
        with pytest.raises(ValueError, match="even columns"):
            ops.composite(frame, background, alpha, out, still, spans)
    with pytest.raises(ValueError, match="int32"):
        ops.composite(frame, background, alpha, out, still, np.zeros((20, 2), np.int64))
    with pytest.raises(ValueError, match="with bg_yuyv only"):
        ops.composite(frame, background, alpha, out, None, np.zeros((20, 2), np.int32))


@pytest.mark.parametrize("effect_name", ["hologram", "none"])
def test_the_compositor_reuses_frames_and_never_changes_a_held_one(monkeypatch, effect_name):
    monkeypatch.setenv(library.ENABLE_ENV, "1")                     # native passes without timing
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, _ = timing.scene(72, 128)
    background.flags.writeable = False
    effect, compositor = create_effect(effect_name), Compositor()
    still = compositor.background_yuyv(background)
    kept = []
    previous = None
    for i, alpha in enumerate(_moving_alphas(72, 128, 10)):
        out = effect.composite(frame, background, alpha, compositor, yuyv=True, background_yuyv=still)
        assert out.shape == (72, 128, 2) and not out.flags.writeable
        if i == 2:
            kept.append((out, out.copy()))        # as a paused output or a slow writer would keep it
        previous = out                            # and the writer holds the last one
    del previous
    assert compositor.frames.reused >= 6
    held, copy = kept[0]
    np.testing.assert_array_equal(held, copy)
