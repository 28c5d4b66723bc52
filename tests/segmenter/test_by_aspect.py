"""selfie-auto (segmenter/model/by_aspect.py): each frame to the model of its grid, with the real
MediaPipe weights, and the reason it is the default: better masks on 16:9 frames against a known
matte (the scenes of bench/bench_matte.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import bench_matte
from bench.frames import photo, scale_to_fill
from segmenter.model import DEFAULT_MODEL, ModelError, create_model
from shared.resize import prepare_input


@pytest.fixture(scope="module")
def models():
    return {name: create_model(name, threads=1) for name in ("selfie", "selfie-landscape", "selfie-auto")}


def test_the_default_model_is_selfie_auto_with_an_aspect_spec(models):
    assert DEFAULT_MODEL == "selfie-auto"
    spec = models["selfie-auto"].input_spec
    assert (spec.width, spec.height, spec.resize) == (256, 256, "aspect")
    assert spec.wide_size == models["selfie-landscape"].input_spec.input_size(1280, 720)


@pytest.mark.parametrize("size, model", [((1280, 720), "selfie-landscape"), ((1920, 1200), "selfie-landscape"),
                                         ((640, 480), "selfie"), ((720, 1280), "selfie")])
def test_each_frame_goes_to_the_model_of_its_grid(models, size, model):
    frame = scale_to_fill(photo("astronaut"), *size)
    auto = prepare_input(frame, models["selfie-auto"].input_spec)
    own = prepare_input(frame, models[model].input_spec)
    assert auto.shape == own.shape
    np.testing.assert_array_equal(auto, own)          # the same stretch onto the same grid
    mask = models["selfie-auto"].segment(auto)
    np.testing.assert_array_equal(mask, models[model].segment(own))
    assert mask.mean() > 30                            # the astronaut is found


def test_a_frame_of_neither_grid_is_refused_naming_both(models):
    with pytest.raises(ModelError, match=r"256x256 or 256x144.*prepare_input"):
        models["selfie-auto"].segment(np.zeros((100, 256, 3), np.uint8))


def test_weights_of_one_file_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelError, match=r"--model selfie or --model selfie-landscape with --weights"):
        create_model("selfie-auto", weights=tmp_path / "one.tflite")


def test_selfie_auto_is_better_on_wide_frames_and_the_same_on_4_3(models):
    """Against an exact matte (a person pasted on other photos): on 16:9 the landscape grid beats
    the squeezed square one; on 4:3 selfie-auto is the general model itself."""
    cutter = models["selfie"]
    for (width, height), better in (((1280, 720), True), ((960, 720), False)):
        cases = list(bench_matte.scenes(cutter, width, height))[::2]
        auto = [bench_matte.score(models["selfie-auto"], f, t)[0] for _, f, t in cases]
        general = [bench_matte.score(models["selfie"], f, t)[0] for _, f, t in cases]
        if better:
            assert np.mean(auto) >= np.mean(general) + 0.03, (np.mean(auto), np.mean(general))
            assert min(auto) >= min(general)
        else:
            assert auto == general
