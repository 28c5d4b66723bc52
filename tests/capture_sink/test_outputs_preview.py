"""Preview and utility outputs: video file, null, window; and the registry."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import skimage.data

from capture_sink.outputs import OUTPUTS, OutputError, create_output
from capture_sink.outputs.window import opencv_gui_backend

W, H = 320, 240


@functools.cache
def _panorama() -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(skimage.data.astronaut()[..., ::-1]), (W * 2, H))


def frames_of(count: int) -> list[np.ndarray]:
    """A real photo panned sideways: every frame differs."""
    base = _panorama()
    return [np.ascontiguousarray(base[:, i * 16 : i * 16 + W]) for i in range(count)]


# -- registry -----------------------------------------------------------------------------------

def test_registry_lists_every_output():
    assert set(OUTPUTS) == {"v4l2", "window", "file", "null"}
    assert all(cls.KEY == key for key, cls in OUTPUTS.items())


def test_unknown_output_names_the_choices():
    with pytest.raises(OutputError, match=r"unknown output 'ndi': choose one of file, null, v4l2, window"):
        create_output("ndi", width=W, height=H, fps=30)


def test_unknown_option_names_the_options():
    with pytest.raises(OutputError, match=r"output 'file' has no option devise: its options are path, fourcc"):
        create_output("file", width=W, height=H, fps=30, devise="/dev/video20")


# -- null ---------------------------------------------------------------------------------------

def test_null_counts_frames_and_checks_them():
    with create_output("null", width=W, height=H, fps=30) as out:
        for frame in frames_of(5):
            out.write(frame)
        assert out.frames_written == 5
        assert out.viewers is None
        with pytest.raises(OutputError, match=r"takes BGR uint8 frames of shape \(240, 320, 3\), got uint8 \(240, 320\)"):
            out.write(np.zeros((H, W), np.uint8))
        assert out.takes_yuyv
        out.write_yuyv(np.zeros((H, W, 2), np.uint8))
        assert out.frames_written == 6
        with pytest.raises(OutputError, match=r"takes YUYV uint8 frames of shape \(240, 320, 2\)"):
            out.write_yuyv(np.zeros((H, W, 3), np.uint8))
    assert out.closed
    with pytest.raises(OutputError, match="null output is closed"):
        out.write(frames_of(1)[0])


# -- file ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension, fourcc", [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_file_round_trip(tmp_path, extension, fourcc):
    path = tmp_path / f"out{extension}"
    frames = frames_of(12)
    with create_output("file", width=W, height=H, fps=15, path=path) as out:
        assert out.fourcc == fourcc
        for frame in frames:
            out.write(frame)
    capture = cv2.VideoCapture(str(path))
    try:
        assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == W and capture.get(cv2.CAP_PROP_FRAME_HEIGHT) == H
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15, abs=0.1)
        read_back = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            read_back.append(frame)
    finally:
        capture.release()
    assert len(read_back) == len(frames)
    for original, decoded in zip(frames, read_back):
        error = np.abs(original.astype(np.int16) - decoded).mean()
        assert error < 8, f"mean abs error {error:.1f}"
    # Each decoded frame is closest to its own original (content, order).
    assert np.abs(frames[0].astype(np.int16) - read_back[0]).mean() < np.abs(frames[6].astype(np.int16) - read_back[0]).mean()


def test_file_with_unknown_extension_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"cannot tell the video codec from 'out.xyz': name the file with one of .mp4"):
        create_output("file", width=W, height=H, fps=30, path=tmp_path / "out.xyz")


def test_file_in_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"folder .*nowhere does not exist: create it"):
        create_output("file", width=W, height=H, fps=30, path=tmp_path / "nowhere" / "out.mp4")


def test_file_that_cannot_be_opened_is_refused(tmp_path):
    target = tmp_path / "taken.avi"
    target.mkdir()  # a folder where the file should go
    with pytest.raises(OutputError, match=r"OpenCV cannot write .*taken.avi as MJPG"):
        create_output("file", width=W, height=H, fps=30, path=target)


# -- the retired MJPEG server -------------------------------------------------------------------

def test_mjpeg_output_is_retired_and_names_the_web_page():
    with pytest.raises(OutputError, match=r"mjpeg output is gone: the web page .* behind its token"):
        create_output("mjpeg", width=W, height=H, fps=30)


# -- window -------------------------------------------------------------------------------------

@pytest.mark.skipif(opencv_gui_backend() is not None, reason="this OpenCV has GUI support")
def test_window_without_gui_support_names_the_fix():
    with pytest.raises(OutputError) as raised:
        create_output("window", width=W, height=H, fps=30)
    message = str(raised.value)
    assert "pip install opencv-python" in message and "the web page" in message and "\n" not in message


def test_auto_output_with_nowhere_to_go_says_so(tmp_path, caplog):
    from capture_sink.config import SinkConfig, validate
    missing = str(tmp_path / "video20")
    with caplog.at_level("WARNING", logger="capture_sink.config"):
        quiet = validate(SinkConfig(source="demo", device=missing, outputs=["auto"]))
    assert quiet.outputs == ["null"] and not caplog.records      # the web page shows the output
    with caplog.at_level("WARNING", logger="capture_sink.config"):
        nowhere = validate(SinkConfig(source="demo", device=missing, outputs=["auto"], http=False))
    assert nowhere.outputs == ["null"]
    assert "the output goes nowhere" in caplog.text and "modprobe v4l2loopback" in caplog.text
