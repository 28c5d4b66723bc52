"""The effect runs after the mask unless the frame's work one step after the other would not fit."""

from __future__ import annotations

from capture_sink.effect_timing import overlap_effect

STAGES_720P = {"prepare": 0.8, "refine": 2.8, "effect": 3.5, "background": 0.0, "composite": 2.3, "wait": 6.0}
STAGES_1080P = {"prepare": 1.0, "refine": 4.8, "effect": 10.0, "background": 0.0, "composite": 7.4, "wait": 5.0}


def test_720p_runs_the_effect_after_the_mask():
    assert not overlap_effect(STAGES_720P, inference_ms=6.0, fps=30.0)


def test_a_frame_that_would_not_fit_overlaps_the_effect():
    assert overlap_effect(STAGES_1080P, inference_ms=6.0, fps=30.0)


def test_the_wait_itself_does_not_count():
    """Overlapping shortens the wait; the decision must not flip back because of that."""
    shorter_wait = {**STAGES_1080P, "wait": 0.5}
    assert overlap_effect(shorter_wait, 6.0, 30.0) == overlap_effect(STAGES_1080P, 6.0, 30.0)


def test_no_mask_yet_means_no_overlap():
    assert not overlap_effect(STAGES_1080P, inference_ms=None, fps=30.0)


def test_a_slower_rate_leaves_room_for_the_serial_order():
    assert not overlap_effect(STAGES_1080P, 6.0, fps=15.0)
