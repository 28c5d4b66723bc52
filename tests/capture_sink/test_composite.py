"""Compositing against a float reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from capture_sink.composite import Compositor


def reference(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255.0
    return fg * a + bg * (1.0 - a)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fg = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    bg = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (512, 512))
    rng = np.random.default_rng(0)
    alpha = cv2.GaussianBlur(rng.integers(0, 256, (512, 512), dtype=np.uint8), (15, 15), 0)
    alpha[:50] = 0
    alpha[-50:] = 255
    return fg, bg, alpha


def test_composite_is_within_one_level_of_float(images) -> None:
    fg, bg, alpha = images
    out = Compositor().composite(fg, bg, alpha)
    diff = np.abs(out.astype(np.float64) - reference(fg, bg, alpha))
    assert diff.max() <= 1.0
    assert out.dtype == np.uint8


def test_full_alpha_gives_foreground_and_zero_gives_background(images) -> None:
    fg, bg, alpha = images
    out = Compositor().composite(fg, bg, alpha)
    assert np.array_equal(out[-50:], fg[-50:])
    assert np.array_equal(out[:50], bg[:50])


def test_every_alpha_level_blends_right() -> None:
    levels = np.arange(256, dtype=np.uint8)
    alpha = np.tile(levels, (4, 1))
    fg = np.full((4, 256, 3), 250, np.uint8)
    bg = np.full((4, 256, 3), 3, np.uint8)
    out = Compositor().composite(fg, bg, alpha)
    assert np.abs(out.astype(np.float64) - reference(fg, bg, alpha)).max() <= 1.0
    assert out[0, 0, 0] == 3 and out[0, -1, 0] == 250


def test_each_result_is_a_fresh_read_only_frame_and_sizes_change(images) -> None:
    """The writers keep a read-only frame by reference: a later composite must not write into it."""
    fg, bg, alpha = images
    compositor = Compositor()
    first = compositor.composite(fg, bg, alpha)
    kept = first.copy()
    second = compositor.composite(bg, fg, alpha)
    assert second is not first and not first.flags.writeable and not second.flags.writeable
    np.testing.assert_array_equal(first, kept)
    with pytest.raises(ValueError):
        first[0, 0, 0] = 1
    small = compositor.composite(fg[:10, :20].copy(), bg[:10, :20].copy(), alpha[:10, :20].copy())
    assert small.shape == (10, 20, 3)


def test_same_foreground_and_background_is_returned_as_is(images) -> None:
    fg, _, alpha = images
    assert Compositor().composite(fg, fg, alpha) is fg


def test_mismatched_sizes_are_refused(images) -> None:
    fg, bg, alpha = images
    with pytest.raises(ValueError, match="equal sizes"):
        Compositor().composite(fg, bg[:100], alpha)
