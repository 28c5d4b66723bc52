"""Motion skip (capture_sink/motion.py) on real photos prepared as the sink prepares them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from capture_sink.sources import scale_to_fill
from capture_sink.motion import MAX_REUSE_S, MotionSkip, reuse_limit_s
from shared.geometry import InputSpec
from shared.resize import prepare_input

SPEC = InputSpec(256, 256, "stretch")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return scale_to_fill(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), 1280, 720)


def _small(frame_bgr: np.ndarray) -> np.ndarray:
    return prepare_input(frame_bgr, SPEC, bgr=True)


def test_same_picture_reuses_the_mask(frame):
    gate = MotionSkip()
    gate.sent(_small(frame), seq=7)
    assert gate.unchanged(_small(frame), 7, mask_capture_time=0.0, now=0.1)
    assert gate.skipped == 1


def test_camera_noise_alone_counts_as_unchanged(frame):
    rng = np.random.default_rng(0)
    gate = MotionSkip()
    gate.sent(_small(frame), seq=1)
    noisy = np.clip(frame + rng.normal(0.0, 3.0, frame.shape), 0, 255).astype(np.uint8)
    assert gate.unchanged(_small(noisy), 1, 0.0, now=0.1)


def test_a_small_move_needs_a_new_mask(frame):
    gate = MotionSkip()
    gate.sent(_small(frame), seq=1)
    shifted = np.roll(frame, 8, axis=1)         # the person moved 8 pixels sideways
    assert not gate.unchanged(_small(shifted), 1, 0.0, now=0.1)


def test_a_hand_moving_in_one_corner_needs_a_new_mask(frame):
    gate = MotionSkip()
    gate.sent(_small(frame), seq=1)
    hand = frame.copy()
    cv2.circle(hand, (1100, 600), 45, (60, 120, 200), -1)   # ~0.7% of the frame
    assert not gate.unchanged(_small(hand), 1, 0.0, now=0.1)


def test_slow_change_accumulates_against_the_reference(frame):
    """Each step alone is under the limit; measured against the mask's own frame, they add up."""
    gate = MotionSkip()
    gate.sent(_small(frame), seq=1)
    picture, verdicts = frame.copy(), []
    for step in range(4):                        # one more ~0.1%-of-the-frame blob per step
        cv2.circle(picture, (200 + 250 * step, 120), 17, (0, 0, 255), -1)
        verdicts.append(gate.unchanged(_small(picture), 1, 0.0, now=0.1))
    assert verdicts[0] and not verdicts[-1], verdicts


def test_old_mask_or_unknown_frame_is_not_reused(frame):
    gate = MotionSkip()
    small = _small(frame)
    gate.sent(small, seq=3)
    assert not gate.unchanged(small, 3, mask_capture_time=0.0, now=MAX_REUSE_S + 0.01)
    assert not gate.unchanged(small, 4, 0.0, now=0.1)        # that frame was never sent
    assert not gate.unchanged(small, None, None, now=0.1)    # no mask yet
    assert not gate.unchanged(prepare_input(frame, InputSpec(256, 144, "stretch")), 3, 0.0, now=0.1)


def test_disabled_never_reuses(frame):
    gate = MotionSkip(enabled=False)
    gate.sent(_small(frame), seq=1)
    assert not gate.unchanged(_small(frame), 1, 0.0, now=0.1)


def test_only_the_newest_frames_are_kept(frame):
    gate = MotionSkip()
    small = _small(frame)
    for seq in range(20):
        gate.sent(small, seq)
    assert gate.unchanged(small, 19, 0.0, now=0.1)
    assert not gate.unchanged(small, 0, 0.0, now=0.1)


def test_a_still_mask_is_refreshed_before_the_fail_closed_gate_calls_it_stale(frame):
    # The sink hides the person when its mask is older than --max-mask-age-ms (capture_sink.failclosed):
    # a still scene must ask for a new mask before that, and a stopped segmenter then hides the person.
    assert reuse_limit_s(500.0) == pytest.approx(0.4)
    assert reuse_limit_s(10000.0) == MAX_REUSE_S
    gate = MotionSkip(max_reuse_s=reuse_limit_s(500.0))
    small = _small(frame)
    gate.sent(small, seq=1)
    assert gate.unchanged(small, 1, mask_capture_time=0.0, now=0.39)
    assert not gate.unchanged(small, 1, mask_capture_time=0.0, now=0.41)
