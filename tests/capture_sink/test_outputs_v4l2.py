"""v4l2loopback writers against a fake device over FUSE (another process), plus the steady writer.

Frames are read back from the fake's record and compared with an independent float
implementation of BT.601 limited-range YUYV / I420 with averaged chroma. The writer tests run
against the rules of v4l2loopback 0.13 and of 0.14/0.15 (tests/fakes/fake_v4l2loopback.py says
what each enforces); tests/capture_sink/test_loopback_rules.py checks those rules themselves.
"""

from __future__ import annotations

import os
import sys
import time

import cv2
import numpy as np
import pytest
import skimage.data

from capture_sink.outputs import OutputError, create_output
from capture_sink.outputs.base import Output
from capture_sink.outputs.v4l2 import V4L2Output
from capture_sink.outputs.yuv import BgrToI420, BgrToYuyv
from capture_sink.steady_writer import SteadyWriter
from helpers_yuv import reference_i420, reference_yuyv

W, H = 640, 360
DRIVER_VERSIONS = ["0.13.2", "0.15.4"]
BACKENDS = ["pyvirtualcam", "pyfakewebcam", "fcntl"]
BACKEND_FORMATS = [
    ("pyvirtualcam", "I420"),
    ("pyvirtualcam", "YUYV"),
    ("pyfakewebcam", "YUYV"),
    ("fcntl", "I420"),
    ("fcntl", "YUYV"),
]


REFERENCE = {"YUYV": reference_yuyv, "I420": reference_i420}
FRAME_BYTES = {"YUYV": W * H * 2, "I420": W * H * 3 // 2}


def assert_close_to_reference(packed: bytes | np.ndarray, bgr: np.ndarray, pixel_format: str) -> None:
    got = np.frombuffer(packed, np.uint8).astype(np.float64)
    diff = np.abs(got - REFERENCE[pixel_format](bgr))
    # Integer conversions round twice (average, then matrix): within 2 levels, ~0.3 on average.
    assert diff.max() <= 2.0, f"max diff {diff.max():.2f}"
    assert diff.mean() < 0.6, f"mean diff {diff.mean():.3f}"


def photo(image: np.ndarray) -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(image[..., ::-1]), (W, H), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def test_frames() -> list[np.ndarray]:
    """Real photos plus noise (the worst case for chroma averaging) and saturated colours."""
    rng = np.random.default_rng(7)
    bars = np.zeros((H, W, 3), np.uint8)
    for i, colour in enumerate([(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 0)]):
        bars[:, i * W // 5 : (i + 1) * W // 5] = colour
    return [
        photo(skimage.data.astronaut()),
        photo(skimage.data.chelsea()),
        rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        bars,
    ]


# -- conversion, no device --------------------------------------------------------------------

@pytest.mark.parametrize("converter, pixel_format", [(BgrToYuyv, "YUYV"), (BgrToI420, "I420")])
def test_conversion_matches_bt601_limited_reference(converter, pixel_format, test_frames):
    convert = converter(W, H).convert
    for frame in test_frames:
        assert_close_to_reference(convert(frame), frame, pixel_format)


def test_conversion_uses_limited_range_levels():
    black, white = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 255, np.uint8)
    i420 = BgrToI420(W, H)
    assert set(np.unique(i420.convert(black)[:H])) == {16}
    assert set(np.unique(i420.convert(white)[:H])) == {235}
    assert set(np.unique(i420.convert(white)[H:])) == {128}


# -- writers against the fake device ------------------------------------------------------------

@pytest.fixture(params=DRIVER_VERSIONS)
def loopback(request, fake_v4l2_with):
    """A fresh fake device following the rules of each v4l2loopback release in DRIVER_VERSIONS."""
    return fake_v4l2_with("--version", request.param)


@pytest.mark.fuse
@pytest.mark.parametrize("backend, pixel_format", BACKEND_FORMATS)
def test_frames_read_back_match_reference(loopback, backend, pixel_format, test_frames):
    with V4L2Output(width=W, height=H, fps=30, device=str(loopback.device), backend=backend,
                    pixel_format=pixel_format) as out:
        for frame in test_frames:
            out.write(frame)
    frames = loopback.frames(FRAME_BYTES[pixel_format])
    assert len(frames) == len(test_frames)
    for written, frame in zip(frames, test_frames):
        assert_close_to_reference(written, frame, pixel_format)


@pytest.mark.fuse
@pytest.mark.parametrize("backend, pixel_format", BACKEND_FORMATS)
def test_accepted_format_is_read_back(loopback, backend, pixel_format):
    with V4L2Output(width=W, height=H, fps=25, device=str(loopback.device), backend=backend,
                    pixel_format=pixel_format) as out:
        accepted = out.accepted_format
    assert (accepted.width, accepted.height) == (W, H)
    assert accepted.describe() == f"{W}x{H} {pixel_format}"
    assert accepted.colorspace == 8  # SRGB, forced by v4l2loopback
    s_fmt = loopback.events("S_FMT")
    assert s_fmt and s_fmt[-1]["request"]["pixelformat"] == {"YUYV": "YUYV", "I420": "YU12"}[pixel_format]
    assert loopback.events("G_FMT"), "the writer must read the format back"
    assert loopback.events("S_PARM")[-1]["timeperframe"] == [1, 25]


@pytest.mark.fuse
@pytest.mark.parametrize("backend, pixel_format", BACKEND_FORMATS)
@pytest.mark.parametrize("version", DRIVER_VERSIONS)
def test_format_locked_by_consumer_fails_loudly(fake_v4l2_with, backend, pixel_format, version):
    # 0.14+ answers S_FMT with the held format, 0.13 refuses it (EBUSY): the same line either way.
    fake = fake_v4l2_with("--lock-format", "1280x720:YUYV", "--version", version)
    with pytest.raises(OutputError) as raised:
        V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend=backend, pixel_format=pixel_format)
    message = str(raised.value)
    assert "\n" not in message
    assert "locked to 1280x720 YUYV" in message
    assert f"close the apps using {fake.device} or restart them after holocam" in message
    # The backend's own fd was closed again, and nothing was written.
    assert fake.all_closed()
    assert fake.record.read_bytes() == b""


@pytest.mark.fuse
@pytest.mark.parametrize("version", DRIVER_VERSIONS)
def test_format_held_by_consumer_is_fine_when_it_matches(fake_v4l2_with, test_frames, version):
    fake = fake_v4l2_with("--lock-format", f"{W}x{H}:YUYV", "--version", version)
    with V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend="fcntl", pixel_format="YUYV") as out:
        out.write(test_frames[0])
    assert len(fake.frames(FRAME_BYTES["YUYV"])) == 1


@pytest.mark.fuse
def test_second_producer_is_refused_while_first_writes(loopback, test_frames):
    with V4L2Output(width=W, height=H, fps=30, device=str(loopback.device), backend="pyvirtualcam") as first:
        first.write(test_frames[0])
        with pytest.raises(OutputError, match="another program is already writing to it"):
            V4L2Output(width=W, height=H, fps=30, device=str(loopback.device), backend="fcntl")
    # Once the first producer has gone, the device takes output again.
    assert loopback.all_closed()
    with V4L2Output(width=W, height=H, fps=30, device=str(loopback.device), backend="fcntl") as again:
        again.write(test_frames[1])


@pytest.mark.fuse
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_writes_yuyv_by_default(loopback, backend, test_frames):
    with V4L2Output(width=W, height=H, fps=30, device=str(loopback.device), backend=backend) as out:
        assert out.pixel_format == "YUYV"
        out.write(test_frames[0])
    assert loopback.events("S_FMT")[-1]["request"]["pixelformat"] == "YUYV"
    (written,) = loopback.frames(FRAME_BYTES["YUYV"])
    assert_close_to_reference(written, test_frames[0], "YUYV")


@pytest.mark.fuse
def test_second_producer_starting_alongside_is_refused(fake_v4l2_with):
    # 0.14+: the first producer holds the output format token from its S_FMT on, before it writes.
    fake = fake_v4l2_with("--version", "0.15.4")
    with V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend="fcntl"):
        with pytest.raises(OutputError) as raised:
            V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend="fcntl")
    assert "another program holds the device's output format" in str(raised.value)
    assert fake.all_closed()


@pytest.mark.fuse
@pytest.mark.parametrize("backend", BACKENDS)
def test_restart_works_on_0_12_7_that_keeps_devices_capture_only(fake_v4l2_with, loopback_sysfs, backend,
                                                                   test_frames):
    """v4l2loopback 0.12.5-0.12.7 leave the device capture-only after a write() producer closes."""
    fake = fake_v4l2_with("--version", "0.12.7")
    loopback_sysfs(version="0.12.7")
    for frame in test_frames[:2]:   # a stop and a start again, as a restarted sink does
        with V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend=backend) as out:
            out.write(frame)
        assert fake.all_closed()
    assert len(fake.frames(FRAME_BYTES["YUYV"])) == 2
    assert fake.events("STREAMON"), "holocam hands the output back with STREAMON before it closes"


@pytest.mark.fuse
def test_capture_only_device_on_0_12_7_names_the_module_reload(fake_v4l2_with, loopback_sysfs):
    from capture_sink.v4l2_ioctl import PIXEL_FORMATS, set_output_format

    fake = fake_v4l2_with("--version", "0.12.7")
    loopback_sysfs(version="0.12.7")
    fd = os.open(fake.device, os.O_WRONLY)   # a producer that does not hand the output back
    set_output_format(fd, W, H, PIXEL_FORMATS["YUYV"])
    os.write(fd, bytes(FRAME_BYTES["YUYV"]))
    os.close(fd)
    assert fake.all_closed()
    with pytest.raises(OutputError) as raised:
        V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend="fcntl")
    message = str(raised.value)
    assert "left it capture-only after the last producer stopped" in message
    assert "sudo modprobe -r v4l2loopback && sudo modprobe v4l2loopback" in message and "\n" not in message


@pytest.mark.fuse
def test_patched_pyfakewebcam_schedule_frame_works_on_numpy_2_3_plus(fake_v4l2, test_frames):
    from capture_sink.outputs.v4l2 import _fakewebcam_class

    assert not hasattr(np.ndarray, "tostring")  # why the shim exists (NumPy >= 2.3)
    camera = _fakewebcam_class()(str(fake_v4l2.device), W, H)
    try:
        camera.schedule_frame(np.ascontiguousarray(test_frames[0][..., ::-1]))  # its contract: RGB
    finally:
        camera.close()
    (written,) = fake_v4l2.frames(FRAME_BYTES["YUYV"])
    assert_close_to_reference(written, test_frames[0], "YUYV")


# -- errors a user meets ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["pyvirtualcam", "pyfakewebcam", "fcntl"])
def test_missing_device_names_modprobe(tmp_path, backend):
    device = tmp_path / "video21"
    with pytest.raises(OutputError) as raised:
        V4L2Output(width=W, height=H, fps=30, device=str(device), backend=backend)
    assert str(raised.value) == (
        f'no {device}: load v4l2loopback: sudo modprobe v4l2loopback devices=1 video_nr=21 '
        f'card_label="holocam" exclusive_caps=1'
    )


def test_regular_file_is_not_a_v4l2_device(tmp_path):
    not_a_device = tmp_path / "video20"
    not_a_device.write_bytes(b"")
    with pytest.raises(OutputError, match=r"is not a V4L2 device \(VIDIOC_QUERYCAP: .*v4l2-ctl --list-devices"):
        V4L2Output(width=W, height=H, fps=30, device=str(not_a_device), backend="fcntl")
    assert not_a_device.read_bytes() == b""


@pytest.mark.fuse
def test_webcam_is_not_a_loopback_device(fake_v4l2_with):
    fake = fake_v4l2_with("--driver", "uvcvideo", "--card", "Integrated Camera")
    with pytest.raises(OutputError) as raised:
        V4L2Output(width=W, height=H, fps=30, device=str(fake.device), backend="pyvirtualcam")
    message = str(raised.value)
    assert "'Integrated Camera' (driver 'uvcvideo'), not a v4l2loopback device" in message
    assert "sudo modprobe v4l2loopback" in message and "\n" not in message


@pytest.mark.fuse
def test_permission_denied_names_video_group(fake_v4l2_with):
    fake = fake_v4l2_with("--open-error", "EACCES")
    with pytest.raises(OutputError, match=r"permission denied opening .*video20: add your user to the video group"):
        V4L2Output(width=W, height=H, fps=30, device=str(fake.device))


def test_missing_backend_package_names_pip_install(monkeypatch, tmp_path):
    # The backends import their package lazily, after the device checks; hide the package and
    # call the backend factories directly so no device is needed.
    from capture_sink.outputs import v4l2

    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(OutputError, match=r"pip install pyvirtualcam==0\.15\.0 .*or choose backend"):
        v4l2._PyVirtualCamBackend(str(tmp_path / "video20"), W, H, 30, "I420")
    monkeypatch.setitem(sys.modules, "pyfakewebcam", None)
    with pytest.raises(OutputError, match=r"pip install pyfakewebcam==0\.1\.0"):
        v4l2._fakewebcam_class()


@pytest.mark.parametrize("options, message", [
    ({"backend": "gstreamer"}, "unknown v4l2 backend 'gstreamer'"),
    ({"pixel_format": "NV12"}, "unknown pixel format 'NV12'"),
    ({"backend": "pyfakewebcam", "pixel_format": "I420"}, "writes YUYV only"),
])
def test_bad_options_are_refused_before_the_device_is_touched(tmp_path, options, message):
    with pytest.raises(OutputError, match=message):
        create_output("v4l2", width=W, height=H, fps=30, device=str(tmp_path / "video20"), **options)


def test_odd_size_is_refused_for_i420(tmp_path):
    with pytest.raises(OutputError, match="I420 needs an even width and height"):
        V4L2Output(width=W, height=H + 1, fps=30, device=str(tmp_path / "video20"), backend="fcntl",
                   pixel_format="I420")


def test_odd_width_is_refused_with_the_reason(tmp_path):
    with pytest.raises(OutputError, match=r"YUYV needs an even width \(Chrome also refuses odd widths\)"):
        V4L2Output(width=W + 1, height=H, fps=30, device=str(tmp_path / "video20"), backend="fcntl")


# -- steady writer ------------------------------------------------------------------------------

class RecordingOutput(Output):
    """A real Output that keeps a copy and a time stamp of every frame, for pacing tests."""

    KEY = "recording"

    def __init__(self, *, width: int, height: int, fps: float, fail_after: int | None = None) -> None:
        super().__init__(width=width, height=height, fps=fps)
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.fail_after = fail_after

    def write(self, frame_bgr: np.ndarray) -> None:
        self._check_frame(frame_bgr)
        if self.fail_after is not None and len(self.frames) >= self.fail_after:
            raise OSError(5, "Input/output error")
        self.frames.append(frame_bgr.copy())
        self.times.append(time.monotonic())

    def _close(self) -> None:
        pass


def solid(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def test_steady_writer_keeps_its_rate_and_repeats_when_input_stalls():
    output = RecordingOutput(width=W, height=H, fps=20)
    with SteadyWriter(output, fps=20, start_black=False) as steady:
        steady.submit(solid(10))
        time.sleep(0.12)
        steady.submit(solid(20))
        start = time.monotonic()
        time.sleep(1.0)  # the producer stalls
        stats = steady.stats
    stalled = [t for t in output.times if t > start]
    assert 15 <= len(stalled) <= 22, f"{len(stalled)} frames in 1 s at 20 fps"
    assert all(np.array_equal(f, solid(20)) for f in output.frames[-10:])
    assert stats.fresh == 2 and stats.repeats == stats.written - 2 >= 15
    assert stats.submitted == 2 and stats.dropped == 0


def test_steady_writer_writes_black_before_the_first_frame():
    output = RecordingOutput(width=W, height=H, fps=50)
    with SteadyWriter(output, fps=50):
        time.sleep(0.1)
    assert len(output.frames) >= 3
    assert all(not f.any() for f in output.frames)


def test_steady_writer_writes_the_newest_frame_and_counts_the_skipped():
    output = RecordingOutput(width=W, height=H, fps=10)
    with SteadyWriter(output, fps=10, start_black=False) as steady:
        for value in range(1, 6):  # faster than the writer: only the newest survives
            steady.submit(solid(value))
        time.sleep(0.25)
        stats = steady.stats
    assert stats.submitted == 5
    assert stats.fresh + stats.dropped == 5
    assert np.array_equal(output.frames[-1], solid(5))


def test_submit_copies_the_frame():
    output = RecordingOutput(width=W, height=H, fps=50)
    frame = solid(7)
    with SteadyWriter(output, fps=50, start_black=False) as steady:
        steady.submit(frame)
        frame[:] = 99  # the caller reuses its buffer at once
        time.sleep(0.1)
    assert all(np.array_equal(f, solid(7)) for f in output.frames)


class IdentityOutput(RecordingOutput):
    """Records which array objects it was handed, not copies."""

    KEY = "identity"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.handed: list[np.ndarray] = []

    def write(self, frame_bgr: np.ndarray) -> None:
        self.handed.append(frame_bgr)
        super().write(frame_bgr)


def test_read_only_frames_are_kept_by_reference_and_writeable_ones_copied():
    """A read-only frame (the effects' fresh output) is written as is, no 2.7 MB copy per writer;
    copies made for writeable frames never land in the buffer the thread is writing."""
    output = IdentityOutput(width=W, height=H, fps=50)
    shared = solid(40)
    shared.flags.writeable = False
    with SteadyWriter(output, fps=50, start_black=False) as steady:
        steady.submit(shared)
        time.sleep(0.1)
        for value in range(1, 30):                 # writeable frames, faster than the writer
            steady.submit(solid(value))
            time.sleep(0.003)
        time.sleep(0.1)
    assert any(f is shared for f in output.handed)                   # written as is
    assert output.handed[-1] is not shared and np.array_equal(output.handed[-1], solid(29))
    later = [int(f[0, 0, 0]) for f in output.frames if int(f[0, 0, 0]) != 40]
    assert later == sorted(later) and later[-1] == 29                # newest last, none torn or old
    assert all(len(np.unique(f)) == 1 for f in output.frames)        # every frame whole


def test_steady_writer_reports_a_failed_output():
    output = RecordingOutput(width=W, height=H, fps=50, fail_after=2)
    steady = SteadyWriter(output, fps=50).start()
    deadline = time.monotonic() + 2
    while steady.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not steady.running
    with pytest.raises(OutputError, match="recording output failed and stopped: .*Input/output error"):
        steady.submit(solid(1))
    with pytest.raises(OutputError):
        steady.stop()


def test_steady_writer_stops_promptly():
    output = RecordingOutput(width=W, height=H, fps=1)
    steady = SteadyWriter(output, fps=1).start()
    time.sleep(0.05)
    started = time.monotonic()
    steady.stop()
    assert time.monotonic() - started < 0.5
    assert not steady.running


@pytest.mark.fuse
def test_steady_writer_keeps_the_fake_device_fed_when_input_stalls(loopback, test_frames):
    fps = 20
    with V4L2Output(width=W, height=H, fps=fps, device=str(loopback.device), backend="fcntl",
                    pixel_format="YUYV") as out:
        with SteadyWriter(out, fps=fps, start_black=False) as steady:
            steady.submit(test_frames[0])
            time.sleep(0.1)
            steady.submit(test_frames[1])
            time.sleep(1.0)  # stalled producer
    frames = loopback.frames(FRAME_BYTES["YUYV"])
    assert 16 <= len(frames) <= 25, f"{len(frames)} frames in 1.1 s at {fps} fps"
    assert_close_to_reference(frames[0], test_frames[0], "YUYV")
    assert len(set(frames[-10:])) == 1, "a stalled producer repeats its last frame byte for byte"
    assert_close_to_reference(frames[-1], test_frames[1], "YUYV")
    assert os.path.getsize(loopback.record) == len(frames) * FRAME_BYTES["YUYV"]
