"""The hologram against a straightforward float reference of the seed's formulas; the registry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from capture_sink.effects import EFFECTS, Effect, EffectError, create_effect


def reference_hologram(img: np.ndarray, rng: np.random.Generator, shift: int = 5) -> np.ndarray:
    """The blog's recipe as written there: row loop, rolled copies with zero fill, float maths."""
    holo = cv2.applyColorMap(img, cv2.COLORMAP_WINTER).astype(np.float64)
    for y in range(holo.shape[0]):
        if y % 5 < 2:
            holo[y] = np.floor(holo[y] * rng.uniform(0.1, 0.3))  # stored back into uint8: truncated

    def shifted(a: np.ndarray, d: int) -> np.ndarray:
        a = np.roll(np.roll(a, d, axis=0), d, axis=1)
        if d > 0:
            a[:d], a[:, :d] = 0, 0
        elif d < 0:
            a[d:], a[:, d:] = 0, 0
        return a

    ghost = np.clip(np.rint(0.2 * holo + 0.8 * shifted(holo, shift)), 0, 255)
    ghost = np.clip(np.rint(0.4 * ghost + 0.6 * shifted(holo, -shift)), 0, 255)
    return np.clip(np.rint(0.5 * img + 0.6 * ghost), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.mark.parametrize("size", [(512, 512), (333, 201), (7, 4)])
def test_hologram_matches_seed_formulas(astronaut_bgr: np.ndarray, size: tuple[int, int]) -> None:
    frame = np.ascontiguousarray(cv2.resize(astronaut_bgr, size))
    ours = create_effect("hologram", seed=7).apply(frame)
    expected = reference_hologram(frame, np.random.default_rng(7))
    diff = np.abs(ours.astype(np.int16) - expected)
    assert diff.max() <= 2
    assert diff.mean() < 0.05


def test_hologram_draws_a_new_factor_per_banded_row_each_frame(astronaut_bgr: np.ndarray) -> None:
    effect = create_effect("hologram", seed=1)
    effect.apply(astronaut_bgr)
    first = effect.last_gains.copy()
    effect.apply(astronaut_bgr)
    assert first.size == sum(1 for y in range(512) if y % 5 < 2)
    assert len(np.unique(first)) == first.size
    assert ((first >= 0.1) & (first <= 0.3)).all()
    assert not np.array_equal(first, effect.last_gains)


def test_hologram_is_reproducible_with_a_seed(astronaut_bgr: np.ndarray) -> None:
    a = create_effect("hologram", seed=3).apply(astronaut_bgr).copy()
    b = create_effect("hologram", seed=3).apply(astronaut_bgr).copy()
    c = create_effect("hologram", seed=4).apply(astronaut_bgr)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_hologram_leaves_input_untouched_and_keeps_its_buffer(astronaut_bgr: np.ndarray) -> None:
    before = astronaut_bgr.copy()
    effect = create_effect("hologram", seed=0)
    out1 = effect.apply(astronaut_bgr)
    out2 = effect.apply(astronaut_bgr)
    assert np.array_equal(astronaut_bgr, before)
    assert out1 is out2 and out1.dtype == np.uint8 and out1.shape == astronaut_bgr.shape


def test_hologram_follows_a_change_of_frame_size(astronaut_bgr: np.ndarray) -> None:
    effect = create_effect("hologram", seed=0)
    effect.apply(astronaut_bgr)
    small = np.ascontiguousarray(astronaut_bgr[:100, :150])
    assert effect.apply(small).shape == small.shape


def test_none_effect_is_the_identity(astronaut_bgr: np.ndarray) -> None:
    assert create_effect("none").apply(astronaut_bgr) is astronaut_bgr


def test_registry_lists_the_builtin_effects() -> None:
    assert {"hologram", "none"} <= set(EFFECTS)
    assert all(issubclass(cls, Effect) for cls in EFFECTS.values())


def test_a_new_effect_is_one_class() -> None:
    class Invert(Effect):
        KEY = "test-invert"

        def apply(self, frame_bgr: np.ndarray) -> np.ndarray:
            return 255 - frame_bgr

    try:
        effect = create_effect("test-invert")
        assert effect.apply(np.zeros((2, 2, 3), np.uint8)).max() == 255
    finally:
        EFFECTS.pop("test-invert")


def test_unknown_effect_names_the_choices() -> None:
    with pytest.raises(EffectError, match="choose one of .*hologram.*none"):
        create_effect("sparkles")


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(EffectError, match="no option colour: its options are seed, band_length"):
        create_effect("hologram", colour="red")


@pytest.mark.parametrize("options", [{"gain_low": 0.5, "gain_high": 0.2}, {"shift": -1},
                                     {"band_length": 0, "band_gap": 0}, {"colormap": "plaid"}])
def test_bad_hologram_options_are_rejected(options: dict) -> None:
    with pytest.raises(EffectError):
        create_effect("hologram", **options)
