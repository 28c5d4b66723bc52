"""The refiner's native passes (capture_sink/native/refine_ops.c): the guide's grey at a whole
fraction of the frame and the guided filter's coefficients, each against the OpenCV path it
replaces, on every build this CPU runs; and the refiner choosing them on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from capture_sink.native import choice, library
from capture_sink.refine import MaskRefiner, preset
from helpers_native import fresh_native_choices  # noqa: F401 (autouse: no native decision leaks between tests)

DEMO = "capture_sink/assets/demo_person.jpg"


def _opencv_guide(frame: np.ndarray, k: int) -> np.ndarray:
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // k, h // k), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("k, size", [(2, (720, 1280)), (2, (46, 70)), (3, (1080, 1920)), (3, (9, 33)),
                                     (4, (144, 256)), (6, (36, 102))])   # 70 / 2: a tail after 16-pixel steps
def test_the_guide_is_opencvs_resize_then_grey(isa, k, size):
    ops = library.build_for(isa)
    rng = np.random.default_rng(k)
    frame = rng.integers(0, 256, (*size, 3), np.uint8)
    frame[: size[0] // 2] = cv2.resize(cv2.imread(DEMO), (size[1], size[0]))[: size[0] // 2]   # smooth and noisy
    out = np.empty((size[0] // k, size[1] // k), np.uint8)
    ops.guide_gray(frame, out)
    diff = np.abs(out.astype(int) - _opencv_guide(frame, k))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # the sample positions matter: a guide off by one source pixel differs on the noisy half
    shifted = np.ascontiguousarray(np.roll(frame, 1, axis=1))
    assert np.abs(out.astype(int) - _opencv_guide(shifted, k)).max() > 8


def test_the_guide_refuses_sizes_that_are_not_a_whole_fraction():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame = np.zeros((720, 1280, 3), np.uint8)
    for shape in [(720, 1280), (361, 640), (240, 427)]:
        with pytest.raises(ValueError, match="whole factor"):
            ops.guide_gray(frame, np.empty(shape, np.uint8))


def _coefficients(refiner: MaskRefiner, frame: np.ndarray, mask: np.ndarray):
    """(guide_low, p_low, OpenCV's mean_a, mean_b) for one frame, through the refiner's own steps."""
    h, w = frame.shape[:2]
    refiner._allocate(w, h)
    refiner._prepare_guide(frame)
    g, (lw, lh) = refiner._g_low, refiner._low_size
    cv2.resize(refiner._guide_gray, (lw, lh), dst=refiner._gray_low, interpolation=cv2.INTER_AREA)
    cv2.resize(refiner._temporal(mask), (lw, lh), dst=g["p"], interpolation=cv2.INTER_LINEAR)
    scale, offset = refiner._ramp or (1.0, 0.0)
    refiner._coefficients_opencv(scale, offset)
    return refiner._gray_low, g["p"], g["II"].copy(), g["Ip"].copy(), (scale, offset)


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("name, size", [("default", (720, 1280)), ("smooth", (1080, 1920)), ("crisp", (480, 640)),
                                        ("default", (24, 40))])      # a window wider than the image
def test_the_guided_coefficients_are_opencvs(isa, name, size):
    ops = library.build_for(isa)
    frame = cv2.resize(cv2.imread(DEMO), (size[1], size[0]))
    mask = cv2.GaussianBlur(np.where(np.random.default_rng(1).random((144, 256)) > 0.5, 255, 0).astype(np.uint8),
                            (31, 31), 8)
    refiner = MaskRefiner(preset(name) if size[0] > 100 else preset(name).replace(work_max_side=0, edge_radius=40))
    guide, p, mean_a, mean_b, (scale, offset) = _coefficients(refiner, frame, mask)
    a, b = np.full_like(mean_a, np.nan), np.full_like(mean_b, np.nan)
    ops.guided_coeffs(guide, p, refiner._radius, refiner._eps, scale, offset, a, b)
    assert np.abs(a - mean_a).max() <= 1e-3 * max(1.0, np.abs(mean_a).max())
    assert np.abs(b - mean_b).max() <= 1e-3 * max(1.0, np.abs(mean_b).max())
    if size[0] < 100:
        return       # the window covers the image many times over: the reflections were the test
    assert np.abs(mean_a).max() > 0.1       # the filter did follow the guide somewhere
    # a window one pixel off shows
    c = np.empty_like(a)
    ops.guided_coeffs(guide, p, refiner._radius + 1, refiner._eps, scale, offset, c, b)
    assert np.abs(c - mean_a).max() > 1e-2 * np.abs(mean_a).max()


def test_the_guided_coefficients_refuse_bad_buffers():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    guide = np.zeros((18, 32), np.uint8)
    p = np.zeros((18, 32), np.float32)
    with pytest.raises(ValueError, match="float32"):
        ops.guided_coeffs(guide, p.astype(np.float64), 3, 65.0, 1.0, 0.0, p.copy(), p.copy())
    with pytest.raises(ValueError, match="float32"):
        ops.guided_coeffs(guide, p, 3, 65.0, 1.0, 0.0, p[:, :-1].copy(), p.copy())
    with pytest.raises(ValueError, match="radius"):
        ops.guided_coeffs(guide, p, -1, 65.0, 1.0, 0.0, p.copy(), p.copy())


@pytest.mark.parametrize("size, k", [((1280, 720), 2), ((1920, 1080), 3)])
def test_the_refiner_gives_the_same_alpha_with_and_without_its_native_passes(monkeypatch, size, k):
    frame = cv2.resize(cv2.imread(DEMO), size)
    mask = np.zeros((144, 256), np.uint8)
    cv2.ellipse(mask, (128, 100), (50, 70), 0, 0, 360, 255, -1)
    alphas = {}
    for mode in ("0", "1"):
        monkeypatch.setenv(library.ENABLE_ENV, mode)
        library.forget()
        choice.forget()
        refiner = MaskRefiner()
        for _ in range(3):                                      # through the temporal average
            alpha = refiner.refine(mask, frame)
        alphas[mode] = alpha.copy()
    isa = library.load().isa
    decisions = choice.decisions()
    assert decisions[f"guide grey {k}x {size[0]}x{size[1]} {isa}"] is True
    assert decisions[f"guided filter coefficients 320x180 {isa}"] is True
    assert decisions[f"guided filter apply 640x360 {isa}"] is True
    assert decisions[f"alpha upsample {k}x {size[0]}x{size[1]} {isa}"] is True
    diff = np.abs(alphas["0"].astype(int) - alphas["1"])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    np.testing.assert_array_equal(alphas["0"] == 0, alphas["1"] == 0)       # the same pixels hidden


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("k, f, size", [(2, 5, (720, 1280)), (2, 3, (18, 30)), (3, 4, (36, 48)), (2, 1, (4, 6))])
def test_the_guide_pass_takes_the_models_input_in_the_same_read(isa, k, f, size):
    ops = library.build_for(isa)
    rng = np.random.default_rng(f)
    frame = rng.integers(0, 256, (*size, 3), np.uint8)
    alone, guide = np.empty((size[0] // k, size[1] // k), np.uint8), np.empty((size[0] // k, size[1] // k), np.uint8)
    sample = np.full((size[0] // f, size[1] // f, 3), 7, np.uint8)
    ops.guide_gray(frame, alone)
    ops.guide_gray(frame, guide, sample)
    np.testing.assert_array_equal(guide, alone)                  # the guide is unchanged by the sample
    nearest = cv2.resize(frame, (size[1] // f, size[0] // f), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(sample, cv2.cvtColor(nearest, cv2.COLOR_BGR2RGB))


def test_the_guide_pass_refuses_a_sample_that_is_not_a_whole_fraction():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, guide = np.zeros((720, 1280, 3), np.uint8), np.empty((360, 640), np.uint8)
    for shape in [(144, 255, 3), (145, 256, 3), (144, 256)]:
        with pytest.raises(ValueError, match="whole factor"):
            ops.guide_gray(frame, guide, np.empty(shape, np.uint8))
    with pytest.raises(ValueError, match="packed rows"):
        ops.guide_gray(frame, guide, np.empty((144, 256, 4), np.uint8)[:, :, :3])


def test_a_guide_prepared_with_the_models_input_gives_the_same_alpha(monkeypatch):
    from shared.geometry import InputSpec
    from shared.resize import prepare_input, whole_factor

    monkeypatch.setenv(library.ENABLE_ENV, "1")
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    spec = InputSpec(256, 256, "aspect")          # selfie-auto: 256x144 for a 16:9 frame
    frames = [cv2.resize(cv2.imread(DEMO), (1280, 720)), cv2.resize(cv2.imread(DEMO)[:, ::-1], (1280, 720))]
    assert whole_factor(1280, 720, spec) == 5 and whole_factor(1920, 1080, spec) is None
    mask = np.zeros((144, 256), np.uint8)
    cv2.ellipse(mask, (128, 100), (50, 70), 0, 0, 360, 255, -1)
    plain, early = MaskRefiner(), MaskRefiner()
    calls = []
    real = ops.guide_gray
    monkeypatch.setattr(ops, "guide_gray", lambda *a: (calls.append(len(a) > 2 and a[2] is not None), real(*a)))
    for frame in frames:
        expected = plain.refine(mask, frame).copy()
        calls.clear()
        small = np.empty((144, 256, 3), np.uint8)
        assert early.prepare(frame, model_input=small)
        np.testing.assert_array_equal(small, prepare_input(frame, spec, bgr=True))
        np.testing.assert_array_equal(early.refine(mask, frame, guide_ready=True), expected)
        assert calls == [True]                        # one read of the frame for the guide and the input
    # a guide made for another frame is never used: the refiner makes this frame's own
    expected = plain.refine(mask, frames[1]).copy()
    early.prepare(frames[0])
    calls.clear()
    np.testing.assert_array_equal(early.refine(mask, frames[1], guide_ready=True), expected)
    assert calls == [False]


def test_the_sink_makes_the_models_input_and_the_guide_in_one_pass(monkeypatch):
    from capture_sink.app import SinkApp
    from capture_sink.config import SinkConfig, validate
    from capture_sink.dispatch.mailbox import MaskResult
    from capture_sink.sources.base import Frame
    from shared.geometry import InputSpec
    from shared.resize import prepare_input

    monkeypatch.setenv(library.ENABLE_ENV, "1")
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False)))
    app.init_pipeline()
    calls = []
    real = ops.guide_gray
    monkeypatch.setattr(ops, "guide_gray", lambda *a: (calls.append(a[2] is not None), real(*a)))
    spec = InputSpec(256, 256, "aspect")
    frame = Frame(cv2.resize(cv2.imread(DEMO), (1280, 720)), 1, 0.0)
    small = app._model_input(frame.image, spec)
    np.testing.assert_array_equal(small, prepare_input(frame.image, spec, bgr=True))
    mask = np.zeros((144, 256), np.uint8)
    cv2.ellipse(mask, (128, 100), (50, 70), 0, 0, 360, 255, -1)
    result = MaskResult(seq=1, capture_time=0.0, mask=mask, replica_id="r", inference_ms=1.0, received_time=0.0)
    app._compose(frame, result)
    assert calls == [True]                    # the guide of the compose is the one made with the input
    wide = Frame(cv2.resize(frame.image, (1920, 1080)), 2, 0.0)   # 1080p: 7.5x, no whole factor
    assert app._model_input(wide.image, spec).shape == (144, 256, 3) and calls == [True]
    app.close()
