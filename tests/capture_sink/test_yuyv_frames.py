"""Frames made as YUYV: the fused passes write the virtual camera's pixel format themselves while
every output takes it, and the writers pass such frames on as they are (or convert them back for an
output that takes BGR only). Against the BGR path on every native build, the steady writer's
routing, the sink's choice of form, and the v4l2 backends writing them to a fake device over FUSE."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from capture_sink.composite import Compositor
from capture_sink.effects import create_effect
from capture_sink.native import choice, library, timing
from capture_sink.outputs.base import Output
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.v4l2 import V4L2Output
from capture_sink.steady_writer import SteadyWriter
from capture_sink.web.preview import PreviewHub, PreviewOutput
from helpers_native import fresh_native_choices  # noqa: F401 (autouse: no native decision leaks between tests)


def _yuyv_of(ops, bgr: np.ndarray) -> np.ndarray:
    out = np.empty((*bgr.shape[:2], 2), np.uint8)
    ops.bgr_to_yuyv(bgr, out)
    return out


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("size", [(720, 1280), (61, 98)])   # 98: tails of the 32- and 16-pixel steps
def test_the_fused_passes_write_the_yuyv_of_their_bgr_frame(isa, size):
    ops = library.build_for(isa)
    frame, background, alpha = timing.scene(*size)
    effect = create_effect("hologram", seed=3)
    effect._prepare(frame)
    bgr = effect._native_composite(ops, frame, background, alpha)
    yuyv = effect._native_composite(ops, frame, background, alpha, channels=2)
    assert yuyv.shape == (*size, 2) and not yuyv.flags.writeable
    np.testing.assert_array_equal(yuyv, _yuyv_of(ops, bgr))       # the same arithmetic, row by row
    out, out_yuyv = np.empty_like(frame), np.empty((*size, 2), np.uint8)
    ops.composite(frame, background, alpha, out)
    ops.composite(frame, background, alpha, out_yuyv)
    np.testing.assert_array_equal(out_yuyv, _yuyv_of(ops, out))
    assert len(np.unique(out_yuyv[..., 1])) > 8                    # chroma carries the picture


def _ragged_scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """timing.scene with spans that start and end on odd columns, an empty row and a full row."""
    frame, background, alpha = timing.scene(height, width)
    alpha = alpha.copy()
    alpha[::3, ::7] = np.random.default_rng(1).integers(0, 256, alpha[::3, ::7].shape)
    alpha[1], alpha[2] = 0, 255
    background = background.copy()
    background.flags.writeable = False
    return frame, background, alpha


@pytest.mark.parametrize("isa", library.runnable_isas())
@pytest.mark.parametrize("size", [(720, 1280), (61, 98), (5, 2)])
def test_a_still_backgrounds_yuyv_gives_the_same_frame(isa, size):
    ops = library.build_for(isa)
    frame, background, alpha = _ragged_scene(*size)
    still = _yuyv_of(ops, background)
    effect = create_effect("hologram", seed=3)
    effect._prepare(frame)
    converted = effect._native_composite(ops, frame, background, alpha, channels=2)
    copied = effect._native_composite(ops, frame, background, alpha, 2, still)
    np.testing.assert_array_equal(copied, converted)
    out, out_still = np.empty((*size, 2), np.uint8), np.empty((*size, 2), np.uint8)
    ops.composite(frame, background, alpha, out)
    ops.composite(frame, background, alpha, out_still, still)
    np.testing.assert_array_equal(out_still, out)
    # where the mask is 0 the frame is the background's YUYV (a wrong copy would show here)
    empty_pairs = (alpha.reshape(size[0], -1, 2) == 0).all(axis=2)
    assert empty_pairs.any()
    np.testing.assert_array_equal(out_still.reshape(size[0], -1, 4)[empty_pairs],
                                  still.reshape(size[0], -1, 4)[empty_pairs])


def test_a_yuyv_background_is_refused_where_it_cannot_be_used():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, alpha = _ragged_scene(20, 32)
    still = _yuyv_of(ops, background)
    with pytest.raises(ValueError, match="needs a YUYV out"):
        ops.composite(frame, background, alpha, np.empty_like(frame), still)
    with pytest.raises(ValueError, match="bg_yuyv must be"):
        ops.composite(frame, background, alpha, np.empty((20, 32, 2), np.uint8), still[:, :16])
    effect = create_effect("hologram")
    effect._prepare(frame)
    with pytest.raises(ValueError, match="only with its BGR one"):
        ops.hologram_composite(frame, effect._full_lut, 5, np.zeros((20, 3), np.uint16), None, None,
                               np.empty((20, 32, 2), np.uint8), still)


def test_the_compositor_converts_a_still_background_once(monkeypatch):
    monkeypatch.setenv(library.ENABLE_ENV, "1")
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, alpha = _ragged_scene(36, 64)
    compositor, calls = Compositor(), []
    real = ops.bgr_to_yuyv
    monkeypatch.setattr(ops, "bgr_to_yuyv", lambda *a: (calls.append(1), real(*a)))
    first = compositor.background_yuyv(background)
    assert compositor.background_yuyv(background) is first and len(calls) == 1
    np.testing.assert_array_equal(first, _yuyv_of(library.build_for(ops.isa), background))
    assert not first.flags.writeable
    other = background.copy()
    other[:] = 200
    other.flags.writeable = False
    assert compositor.background_yuyv(other)[0, 0, 0] != first[0, 0, 0] and len(calls) == 2
    assert compositor.background_yuyv(background.copy()) is None     # writable: it may change under us
    assert compositor.background_yuyv(np.ascontiguousarray(background[:, :63])) is None   # odd width


@pytest.mark.parametrize("effect_name", ["hologram", "none"])
def test_the_sink_hands_the_still_background_to_the_yuyv_pass(monkeypatch, effect_name):
    from capture_sink.app import SinkApp
    from capture_sink.backgrounds import create_background
    from capture_sink.config import SinkConfig, validate
    from capture_sink.dispatch.mailbox import MaskResult
    from capture_sink.sources.base import Frame

    monkeypatch.setenv(library.ENABLE_ENV, "1")
    if library.load() is None:
        pytest.skip("native passes unavailable: no C compiler")
    assert create_background("#204060").still and create_background("holodeck").still
    assert not create_background("blur").still and not create_background("none").still
    app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False,
                                      background="#204060", effect=effect_name)))
    app.init_pipeline()
    handed = []
    # what reaches the pass that writes the frame: the hologram's fused one, or the compositor
    target, name = (app.effect, "_native_composite") if effect_name == "hologram" else (app.compositor, "composite")
    real = getattr(target, name)

    def recorded(*args, **kwargs):
        handed.append(kwargs.get("background_yuyv", args[5] if len(args) > 5 else None))
        return real(*args, **kwargs)
    monkeypatch.setattr(target, name, recorded)
    frame, _, alpha = timing.scene(36, 64)
    result = MaskResult(seq=1, capture_time=0.0, mask=cv2.resize(alpha, (32, 18)), replica_id="r",
                        inference_ms=1.0, received_time=0.0)
    foreground = None if effect_name == "hologram" else frame
    bgr = app._compose(Frame(frame, 1, 0.0), result, foreground)
    assert bgr.shape == (36, 64, 3) and handed and all(h is None for h in handed)
    monkeypatch.setattr(app, "_writers_take_yuyv", lambda: True)
    handed.clear()
    yuyv = app._compose(Frame(frame, 2, 0.0), result, foreground)
    background = app.background.render(frame)
    assert yuyv.shape == (36, 64, 2)
    assert handed[-1] is app.compositor.background_yuyv(background)       # made once, then handed on
    shown = app.refiner.refine(result.mask, frame) > 0
    assert (~shown).any()
    np.testing.assert_array_equal(yuyv[..., 0][~shown], _yuyv_of(library.load(), background)[..., 0][~shown])
    app.close()


def test_yuyv_needs_an_even_width():
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, alpha = timing.scene(20, 33)
    with pytest.raises(ValueError, match="even width"):
        ops.composite(frame, background, alpha, np.empty((20, 33, 2), np.uint8))
    assert Compositor().yuyv_pays("composite", (20, 33), ops.isa, lambda: None, lambda: None) is False


@pytest.mark.parametrize("effect_name", ["hologram", "none"])
def test_the_composite_makes_yuyv_only_when_asked(monkeypatch, effect_name):
    monkeypatch.setenv(library.ENABLE_ENV, "1")                     # native passes without timing
    if library.load() is None:
        pytest.skip("native passes unavailable: no C compiler")
    frame, background, alpha = timing.scene(360, 640)
    effect, compositor = create_effect(effect_name), Compositor()
    bgr = effect.composite(frame, background, alpha, compositor)
    made = effect.composite(frame, background, alpha, compositor, yuyv=True)
    assert bgr.shape == (360, 640, 3) and made.shape == (360, 640, 2)
    if effect_name == "none":       # the hologram's bands are drawn fresh each frame
        np.testing.assert_array_equal(made, _yuyv_of(library.load(), bgr))


@pytest.mark.parametrize("effect_name", ["hologram", "none"])
def test_yuyv_made_slower_than_converting_after_is_not_used(monkeypatch, effect_name):
    ops = library.load()
    if ops is None:
        pytest.skip("native passes unavailable: no C compiler")
    timings = iter([(2.0, 1.0), (1.0, 2.0)])   # the BGR pass beats OpenCV; writing YUYV loses to converting
    monkeypatch.setattr(choice, "time_both", lambda stock, native, rounds=choice.ROUNDS: next(timings))
    frame, background, alpha = timing.scene(360, 640)
    effect, compositor = create_effect(effect_name), Compositor()
    assert effect.composite(frame, background, alpha, compositor, yuyv=True).shape == (360, 640, 3)
    op = "hologram+composite" if effect_name == "hologram" else "composite"
    assert choice.decisions() == {f"{op} 640x360 {ops.isa}": True, f"{op} to YUYV 640x360 {ops.isa}": False}


class _Recorder(Output):
    KEY = "recorder"

    def __init__(self, *, takes_yuyv: bool) -> None:
        super().__init__(width=64, height=32, fps=100)
        self.takes_yuyv = takes_yuyv
        self.bgr: list[np.ndarray] = []
        self.yuyv: list[np.ndarray] = []

    def write(self, frame_bgr):
        self._check_frame(frame_bgr)
        self.bgr.append(frame_bgr.copy())

    def write_yuyv(self, frame_yuyv):
        if not self.takes_yuyv:
            super().write_yuyv(frame_yuyv)
        self._check_frame(frame_yuyv, channels=2)
        self.yuyv.append(frame_yuyv.copy())

    def _close(self):
        pass


def _wait_for(predicate, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the steady writer did not write in time"
        time.sleep(0.005)


@pytest.mark.parametrize("read_only", [True, False])
def test_the_steady_writer_passes_yuyv_on_as_it_is(read_only):
    rng = np.random.default_rng(0)
    yuyv = rng.integers(16, 236, (32, 64, 2), np.uint8)
    yuyv.flags.writeable = not read_only
    out = _Recorder(takes_yuyv=True)
    with SteadyWriter(out, fps=100, start_black=False) as writer:
        assert writer.takes_yuyv
        writer.submit(yuyv)
        _wait_for(lambda: out.yuyv)
    np.testing.assert_array_equal(out.yuyv[0], yuyv)
    assert not out.bgr


def test_a_bgr_only_output_gets_yuyv_frames_converted_back():
    frame, _, _ = timing.scene(32, 64)
    yuyv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2)
    out = _Recorder(takes_yuyv=False)
    with SteadyWriter(out, fps=100, start_black=False) as writer:
        writer.submit(yuyv)
        _wait_for(lambda: out.bgr)
    assert out.bgr[0].shape == (32, 64, 3)
    assert np.abs(out.bgr[0].astype(int) - frame).mean() < 6     # YUV 4:2:2 round trip of a photo
    with pytest.raises(OutputError, match="BGR frames only"):
        out.write_yuyv(yuyv)


def test_the_steady_writer_refuses_other_shapes():
    with SteadyWriter(_Recorder(takes_yuyv=True), fps=100, start_black=False) as writer:
        for bad in (np.zeros((32, 64, 4), np.uint8), np.zeros((32, 64), np.uint8), np.zeros((32, 63, 2), np.uint8)):
            with pytest.raises(OutputError, match="steady writer takes"):
                writer.submit(bad)


def test_the_sink_asks_for_yuyv_only_while_every_output_takes_it():
    from capture_sink.app import SinkApp
    from capture_sink.config import SinkConfig, validate

    app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False)))
    assert app._writers_take_yuyv() is False                        # no output: nothing to make it for
    camera = SteadyWriter(_Recorder(takes_yuyv=True), fps=30)
    window = SteadyWriter(_Recorder(takes_yuyv=False), fps=30)      # a window or a file: BGR only
    app.add_output(camera)
    assert app._writers_take_yuyv() is True
    app.add_output(SteadyWriter(PreviewOutput(width=64, height=32, fps=15, hub=PreviewHub()), fps=15))
    assert app._writers_take_yuyv() is True                         # the web page's preview takes YUYV
    app.add_output(window)
    assert app._writers_take_yuyv() is False
    app.remove_output(window)
    assert app._writers_take_yuyv() is True


def test_the_preview_encodes_yuyv_frames_only_while_watched():
    frame, _, _ = timing.scene(32, 64)
    hub = PreviewHub()
    published: list[bytes] = []
    hub.publish = lambda jpeg, taken_at: published.append(jpeg)
    preview = PreviewOutput(width=64, height=32, fps=15, hub=hub)
    yuyv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2)
    preview.write_yuyv(yuyv)
    assert preview.frames_written == 1 and not published           # nobody watches: nothing encoded
    hub.clients = 1
    preview.write_yuyv(yuyv)
    (jpeg,) = published
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert np.abs(shown.astype(int) - frame).mean() < 8            # the picture, not YUYV bytes as BGR
    with pytest.raises(OutputError, match="YUYV uint8 frames"):
        preview.write_yuyv(yuyv[:, :32])


@pytest.mark.fuse
@pytest.mark.parametrize("backend", ["pyvirtualcam", "pyfakewebcam", "fcntl"])
def test_every_yuyv_backend_writes_a_yuyv_frame_as_it_is(fake_v4l2, backend):
    frame, _, _ = timing.scene(360, 640)
    yuyv = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_YUY2))
    with V4L2Output(width=640, height=360, fps=30, device=str(fake_v4l2.device), backend=backend) as out:
        assert out.takes_yuyv
        out.write_yuyv(yuyv)
    (written,) = fake_v4l2.frames(640 * 360 * 2)
    assert written == yuyv.tobytes()


@pytest.mark.fuse
def test_an_i420_device_takes_bgr_only(fake_v4l2):
    with V4L2Output(width=640, height=360, fps=30, device=str(fake_v4l2.device), backend="fcntl",
                    pixel_format="I420") as out:
        assert not out.takes_yuyv
        with pytest.raises(OutputError, match="BGR frames only"):
            out.write_yuyv(np.zeros((360, 640, 2), np.uint8))
