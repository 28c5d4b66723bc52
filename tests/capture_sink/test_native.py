"""The sink's native frame passes (capture_sink/native): same pixels as OpenCV, every build, and
the never-slower choice."""

from __future__ import annotations

import logging
import platform
import time

import cv2
import numpy as np
import pytest

from capture_sink.composite import Compositor
from capture_sink.effects import create_effect
from capture_sink.native import build as native_build
from capture_sink.native import choice, library
from helpers_native import fresh_native_choices  # noqa: F401 (autouse: no native decision leaks between tests)
from helpers_yuv import reference_yuyv

pytestmark = pytest.mark.skipif(native_build.compiler() is None, reason="no C compiler: apt install gcc")

DEMO = "capture_sink/assets/demo_person.jpg"


def _scene(height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = cv2.resize(cv2.imread(DEMO), (width, height), interpolation=cv2.INTER_AREA)
    background = rng.integers(0, 256, (height, width, 3), np.uint8)
    alpha = np.zeros((height, width), np.uint8)
    alpha[:, width // 4:3 * width // 4] = 255
    alpha[:, width // 4 - 24:width // 4] = np.linspace(0, 255, 24).astype(np.uint8)   # a soft edge
    return frame, background, alpha


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("size", [(720, 1280), (241, 333)])   # odd sizes: tails of every loop
@pytest.mark.parametrize("person", ["band", "ellipse", "corner", "nobody"])
def test_fused_hologram_matches_the_opencv_path(isa, size, person):
    ops = library.build_for(isa)
    frame, background, alpha = _scene(*size)
    if person != "band":     # the pass skips rows and columns the mask hides: they must still be right
        h, w = size
        alpha[:] = 0
        if person == "ellipse":
            cv2.ellipse(alpha, (w // 2, h // 2), (w // 5, h // 3), 0, 0, 360, 255, -1)
            alpha = cv2.GaussianBlur(alpha, (0, 0), 3)
        elif person == "corner":
            alpha[-7:, -9:] = 200      # within the ghost's reach of the frame's edges
    stock_effect, native_effect = create_effect("hologram", seed=7), create_effect("hologram", seed=7)
    stock_effect._prepare(frame)
    native_effect._prepare(frame)
    np.testing.assert_array_equal(stock_effect.last_gains, native_effect.last_gains)
    expected = Compositor()._composite_opencv_fresh(stock_effect._apply_opencv(frame), background, alpha)
    got = native_effect._native_composite(ops, frame, background, alpha)
    diff = np.abs(expected.astype(int) - got)
    assert diff.max() <= 2, f"{isa}: the fused pass differs from OpenCV by {diff.max()} levels"
    assert diff.mean() < 0.5
    hidden = alpha == 0
    np.testing.assert_array_equal(got[hidden], background[hidden])     # the mask hides: background only
    # The hologram alone (no background) matches the effect's own output too.
    alone = native_effect._native_composite(ops, frame, None, None)
    assert np.abs(stock_effect._apply_opencv(frame).astype(int) - alone).max() <= 2


@pytest.mark.parametrize("isa", library.runnable_isas())
def test_native_composite_is_the_exact_blend(isa):
    ops = library.build_for(isa)
    frame, background, alpha = _scene(181, 257)
    out = np.empty_like(frame)
    ops.composite(frame, background, alpha, out)
    a = alpha[..., None].astype(np.float64) / 255.0
    exact = frame * a + background * (1.0 - a)
    assert np.abs(out - exact).max() <= 0.5 + 1e-9      # rounded, never off by a level
    assert np.abs(Compositor()._composite_opencv_fresh(frame, background, alpha).astype(int) - out).max() <= 1


@pytest.mark.parametrize("isa", library.runnable_isas())
def test_the_tint_is_the_colormap_of_the_luma_with_zero_beyond_the_frame(isa):
    """With only the centre copy weighted, the pass shows frame/2 + w * lut[gray], and the ghost
    copies read zeros beyond the frame (the seed's zero fill), never the next row's pixels."""
    ops = library.build_for(isa)
    frame, _, _ = _scene(97, 131)
    lut = np.ascontiguousarray(create_effect("hologram")._full_lut)
    b, g, r = (frame[..., c].astype(np.int64) for c in range(3))
    gray = (b * 29 + g * 150 + r * 77 + 128) >> 8              # frame_ops.c's BT.601 luma
    assert np.abs(gray - cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)).max() <= 1   # OpenCV's, within a level
    out = np.empty_like(frame)
    centre = np.zeros((97, 3), np.uint16)
    centre[:, 1] = 32768                                        # weight 0.5 on the tint at (y, x)
    ops.hologram_composite(frame, lut, 5, centre, None, None, out)
    expected = np.minimum(255, np.rint(frame / 2.0 + lut[gray] / 2.0))
    assert np.abs(out - expected).max() <= 1
    behind = np.zeros((97, 3), np.uint16)
    behind[:, 2] = 65535                                        # all weight on the tint at (y+5, x+5)
    ops.hologram_composite(frame, lut, 5, behind, None, None, out)
    edge = np.rint(frame[-5:] / 2.0)                            # rows whose (y+5) is outside the frame
    assert np.abs(out[-5:] - edge).max() <= 1
    assert np.abs(out[:, -5:] - np.rint(frame[:, -5:] / 2.0)).max() <= 1   # columns beyond the right edge


# /proc/cpuinfo flags (the ones the x86-64 levels look at) of CPUs holocam's users have.
_SSE4 = {"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm"}
_CPUS = {
    "Intel Core i5-1235U (Alder Lake)": _SSE4 | {"avx", "avx2", "bmi1", "bmi2", "fma", "f16c", "movbe"},
    "Intel Celeron N5100 (Jasper Lake, no AVX)": _SSE4 | {"movbe"},
    "Intel Core i5-2520M (Sandy Bridge, AVX but not AVX2)": _SSE4 | {"avx"},
    "Intel Core 2 Duo T7200 (SSSE3, no SSE4)": {"pni", "ssse3", "cx16", "lahf_lm"},
    "AMD Ryzen 7 7840U (Zen 4)": _SSE4 | {"avx", "avx2", "bmi1", "bmi2", "fma", "f16c", "movbe", "avx512f",
                                          "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


@pytest.mark.parametrize("cpu, sink_build, kernel_build", [
    ("Intel Core i5-1235U (Alder Lake)", "avx2", "avx2"),
    ("Intel Celeron N5100 (Jasper Lake, no AVX)", "sse4", "generic"),
    ("Intel Core i5-2520M (Sandy Bridge, AVX but not AVX2)", "sse4", "generic"),
    ("Intel Core 2 Duo T7200 (SSSE3, no SSE4)", "generic", "generic"),
    ("AMD Ryzen 7 7840U (Zen 4)", "avx512", "avx512"),
])
def test_each_cpu_gets_the_widest_build_it_runs(cpu, sink_build, kernel_build):
    """The sink's passes have an x86-64-v2 build for CPUs without AVX2; the segmenter's kernels keep
    their three levels."""
    from shared.native_build import best_build
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the x86-64 levels are built on x86-64 only")
    assert library.best_isa(_CPUS[cpu]) == sink_build
    assert best_build(_CPUS[cpu]) == kernel_build


def test_bad_buffers_are_refused_with_a_clear_error():
    ops = library.build_for("generic")
    frame, background, alpha = _scene(64, 96)
    out = np.empty_like(frame)
    with pytest.raises(ValueError, match="alpha must be a uint8"):
        ops.composite(frame, background, alpha.astype(np.float32), out)
    with pytest.raises(ValueError, match="bg is 48x64, expected 96x64"):
        ops.composite(frame, background[:, :48], alpha, out)
    # The sink does not hand such buffers over: it keeps OpenCV for them.
    assert not library.accepts(frame[:, ::2], background[:, ::2], alpha[:, ::2])
    assert library.accepts(frame, background, alpha)


def test_the_effect_uses_opencv_when_switched_off(monkeypatch):
    monkeypatch.setenv(library.ENABLE_ENV, "0")
    frame, background, alpha = _scene(120, 160)
    switched_off, reference = create_effect("hologram", seed=3), create_effect("hologram", seed=3)
    got = switched_off.composite(frame, background, alpha, Compositor()).copy()
    expected = Compositor().composite(reference.apply(frame), background, alpha)
    np.testing.assert_array_equal(got, expected)
    assert choice.decisions() == {} and not switched_off.fuses_composite


def test_forced_on_skips_the_timing_and_uses_the_native_pass(monkeypatch):
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    frame, background, alpha = _scene(120, 160)
    effect = create_effect("hologram", seed=3)
    assert not effect.fuses_composite               # nothing decided before the first frame
    out = effect.composite(frame, background, alpha, Compositor())
    assert effect.fuses_composite and not out.flags.writeable   # the fused pass's fresh, read-only frame
    assert choice.decisions() == {f"hologram+composite 160x120 {library.load().isa}": True}


def test_bad_settings_fail_with_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setenv(library.ENABLE_ENV, "yes")
    with pytest.raises(library.NativeError, match="use 0 .* 1 .* or unset"):
        library.load()
    library.forget()
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    monkeypatch.setenv(library.ISA_ENV, "sse9")
    with pytest.raises(library.NativeError, match="choose one of"):
        library.load()


def test_a_failed_build_falls_back_to_opencv_unless_forced(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("HOLOCAM_CACHE_DIR", str(tmp_path))      # nothing built there yet
    monkeypatch.setenv("CC", "/bin/false")
    monkeypatch.setattr(native_build.shutil, "which", lambda name: "/bin/false" if name == "/bin/false" else None)
    with caplog.at_level(logging.WARNING, logger="capture_sink.native.library"):
        assert library.load() is None
    assert "apt install gcc" in caplog.text and "HOLOCAM_SINK_NATIVE=0" in caplog.text
    library.forget()
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    with pytest.raises(library.NativeError, match="cannot load"):
        library.load()


def test_the_library_key_covers_every_source_and_the_header(monkeypatch, tmp_path):
    """An edit to any of the sources must name a new library, or a stale build would be loaded."""
    copies = []
    for path in (*native_build.SOURCES, native_build.HEADER):
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        copies.append(copy)
    monkeypatch.setattr(native_build, "SOURCES", tuple(copies[:-1]))
    monkeypatch.setattr(native_build, "HEADER", copies[-1])
    keys = {native_build.build_key()}
    for copy in copies:
        copy.write_bytes(copy.read_bytes() + b"\n/* edited */\n")
        keys.add(native_build.build_key())
    assert len(keys) == len(copies) + 1


def test_decide_takes_the_strictly_faster_path():
    assert choice.decide(stock_ms=5.6, native_ms=2.1) is True
    assert choice.decide(stock_ms=2.0, native_ms=2.1) is False
    assert choice.decide(stock_ms=2.0, native_ms=2.0) is False     # a tie keeps OpenCV


@pytest.mark.parametrize("native_s, chosen", [(0.001, True), (0.008, False)])
def test_the_first_frame_times_both_paths_and_logs_one_line(monkeypatch, caplog, native_s, chosen):
    calls = {"stock": 0, "native": 0}

    def stock():
        calls["stock"] += 1
        time.sleep(0.004)

    def native():
        calls["native"] += 1
        time.sleep(native_s)

    with caplog.at_level(logging.INFO, logger="capture_sink.native.choice"):
        assert choice.use_native("composite", (720, 1280), "avx2", stock, native) is chosen
        assert choice.use_native("composite", (720, 1280), "avx2", stock, native) is chosen  # kept
    assert calls == {"stock": choice.ROUNDS + 1, "native": choice.ROUNDS + 1}    # timed once
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "1280x720" in lines[0] and "OpenCV" in lines[0]
    assert lines[0].endswith("native" if chosen else "OpenCV")


def test_the_sink_takes_the_faster_path_on_real_frames():
    ops = library.load()
    assert ops is not None and ops.isa == library.best_isa()
    frame, background, alpha = _scene(360, 640)
    effect, compositor = create_effect("hologram", seed=1), Compositor()
    effect.composite(frame, background, alpha, compositor)
    made = choice.decisions()
    assert set(made) >= {f"hologram+composite 640x360 {ops.isa}"}


def _bilinear_exact(src: np.ndarray, k: int) -> np.ndarray:
    """INTER_LINEAR at a whole factor k in float64 (pixel centres aligned, borders repeated)."""
    h, w = src.shape
    s = src.astype(np.float64)

    def taps(n: int):
        pos = (np.arange(k * n) + 0.5) / k - 0.5
        lo = np.floor(pos).astype(int)
        return np.clip(lo, 0, n - 1), np.clip(lo + 1, 0, n - 1), pos - lo
    y0, y1, fy = taps(h)
    x0, x1, fx = taps(w)
    fy, fx = fy[:, None], fx[None, :]
    return (s[y0][:, x0] * (1 - fy) * (1 - fx) + s[y0][:, x1] * (1 - fy) * fx
            + s[y1][:, x0] * fy * (1 - fx) + s[y1][:, x1] * fy * fx)


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("shape", [(360, 640), (45, 77), (1, 1), (2, 3)])
def test_the_alpha_upsample_is_opencvs_bilinear(isa, k, shape):
    """Exactly rounded at 2x, within a level of exact at 3x and 4x; within a level of OpenCV,
    which truncates on the way; zeros stay exactly zero (the mask hides: fail closed)."""
    ops = library.build_for(isa)
    rng = np.random.default_rng(shape[0] + k)
    src = rng.integers(0, 256, shape, np.uint8)
    src[: shape[0] // 2] = 0                                    # a hidden region (fail closed)
    out = np.full((k * shape[0], k * shape[1]), 77, np.uint8)
    ops.upsample(src, out)
    exact = _bilinear_exact(src, k)
    if k == 2:
        np.testing.assert_array_equal(out, np.floor(exact + 0.5).astype(np.uint8))
    else:
        assert np.abs(out - exact).max() < 1.0
    opencv = cv2.resize(src, (k * shape[1], k * shape[0]), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out.astype(int) - opencv).max() <= 1
    hidden_rows = k * (shape[0] // 2) - k // 2 - 1               # output rows that read hidden rows only
    if hidden_rows > 0:
        assert not out[:hidden_rows].any()


def test_the_alpha_upsample_refuses_other_sizes():
    ops = library.load()
    with pytest.raises(ValueError, match="scales by 2, 3 or 4"):
        ops.upsample(np.zeros((10, 20), np.uint8), np.zeros((50, 100), np.uint8))
    with pytest.raises(ValueError, match="out must be a uint8"):
        ops.upsample(np.zeros((10, 20), np.uint8), np.zeros((20, 41), np.uint8))
    with pytest.raises(ValueError, match="src must be a uint8"):
        ops.upsample(np.zeros((10, 20, 3), np.uint8), np.zeros((20, 40), np.uint8))


@pytest.mark.parametrize("size, factor", [((1280, 720), 2), ((1920, 1080), 3)])
def test_the_refiner_scales_its_alpha_up_with_the_native_pass(monkeypatch, size, factor):
    from capture_sink.refine import MaskRefiner
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    frame, _, _ = _scene(size[1], size[0])
    mask = np.zeros((144, 256), np.uint8)
    mask[20:140, 80:180] = 255
    alpha = MaskRefiner().refine(mask, frame)
    assert alpha.shape == (size[1], size[0])
    ops = library.load()
    assert choice.decisions().get(f"alpha upsample {factor}x {size[0]}x{size[1]} {ops.isa}") is True
    w = size[0]
    assert alpha[:, : w * 30 // 128].max() == 0                        # hidden stays hidden
    assert alpha[size[1] * 2 // 7: size[1] * 5 // 6, w * 100 // 256: w * 160 // 256].min() > 200


@pytest.mark.parametrize("isa", library.runnable_isas())
def test_the_guided_filter_apply_is_opencvs_resize_multiply_add(isa):
    """q = up2(a) I + up2(b), saturated: the same as OpenCV's float resizes, multiply and add,
    within a level (float rounding at .5), including below 0 and above 255."""
    ops = library.build_for(isa)
    rng = np.random.default_rng(5)
    h, w = 45, 80
    a = rng.normal(0.0, 2.0, (h, w)).astype(np.float32)
    b = rng.normal(100.0, 200.0, (h, w)).astype(np.float32)        # saturates both ways
    guide = rng.integers(0, 256, (2 * h, 2 * w), np.uint8)
    out = np.empty_like(guide)
    ops.guided_apply(a, b, guide, out)
    up = lambda x: cv2.resize(x, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)   # noqa: E731
    expected = cv2.add(cv2.multiply(up(a), guide, dtype=cv2.CV_32F), up(b), dtype=cv2.CV_8U)
    diff = np.abs(out.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert (out == 0).any() and (out == 255).any()
    a[:4], b[:4] = np.nan, np.inf                               # broken coefficients: hidden, never shown
    a[4:8], b[4:8] = 1e30, 1e30
    ops.guided_apply(a, b, guide, out)
    assert not out[:14].any()
    with pytest.raises(ValueError, match="two float32"):
        ops.guided_apply(a, b.astype(np.float64), guide, out)
    with pytest.raises(ValueError, match="guide must be"):
        ops.guided_apply(a, b, guide[:-1], out)


def _reference_yuyv(bgr: np.ndarray) -> np.ndarray:
    return reference_yuyv(bgr).reshape(bgr.shape[0], bgr.shape[1], 2)


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("width", [1280, 82, 2])          # whole 32- and 16-pixel steps, a tail, one pair
def test_bgr_to_yuyv_is_bt601_limited_within_rounding(isa, width):
    ops = library.build_for(isa)
    rng = np.random.default_rng(width)
    photo = cv2.resize(cv2.imread(DEMO), (width, 24), interpolation=cv2.INTER_AREA)
    extremes = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255], [0, 255, 0]], np.uint8)
    for frame in (photo, rng.integers(0, 256, (24, width, 3), np.uint8),
                  np.resize(extremes, (24, width, 3)).astype(np.uint8)):
        out = np.empty((24, width, 2), np.uint8)
        ops.bgr_to_yuyv(np.ascontiguousarray(frame), out)
        diff = np.abs(out - _reference_yuyv(frame))
        assert diff.max() <= 0.53, f"{isa}: {diff.max():.2f} levels off BT.601"   # OpenCV: 0.60
        opencv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2YUV_YUY2)
        assert np.abs(out.astype(int) - opencv).max() <= 1
    with pytest.raises(ValueError, match="even width"):
        ops.bgr_to_yuyv(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 2), np.uint8))


def test_the_yuyv_writer_converts_with_the_native_pass_when_it_is_chosen(monkeypatch):
    from capture_sink.outputs.yuv import BgrToYuyv
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    frame, _, _ = _scene(360, 640)
    converter = BgrToYuyv(640, 360)
    got = converter.convert(frame).copy()
    assert choice.decisions() == {f"BGR to YUYV 640x360 {library.load().isa}": True}
    assert np.abs(got - _reference_yuyv(frame)).max() <= 0.53
