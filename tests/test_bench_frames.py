"""The bench's webcam-like MJPEG source: 4:2:2 JPEGs stored as they are, read and looped by the sink."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg

from bench import frames
from bench.mjpeg_avi import write_mjpeg_avi
from capture_sink.sources.files import VideoFileSource


def test_an_avi_of_our_own_jpegs_reads_back_packet_for_packet(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(5)]
    jpegs = [simplejpeg.encode_jpeg(im, 90, "BGR", "422") for im in images]
    path = write_mjpeg_avi(tmp_path / "clip.avi", jpegs, 64, 48, 25.0)
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    assert cap.set(cv2.CAP_PROP_FORMAT, -1)       # undecoded packets, as the sink reads MJPEG files
    packets = [cap.read()[1].reshape(-1).tobytes() for _ in range(5)]
    assert packets == jpegs
    assert not cap.read()[0]
    assert cap.set(cv2.CAP_PROP_POS_FRAMES, 0) and cap.read()[1].reshape(-1).tobytes() == jpegs[0]   # the index


def test_write_refuses_what_is_not_a_jpeg(tmp_path):
    with pytest.raises(ValueError, match="JPEG"):
        write_mjpeg_avi(tmp_path / "x.avi", [b"not a jpeg"], 8, 8, 30.0)
    with pytest.raises(ValueError, match="at least one frame"):
        write_mjpeg_avi(tmp_path / "x.avi", [], 8, 8, 30.0)


def test_the_bench_source_is_webcam_like_and_loops_in_the_sink(tmp_path):
    path = frames.write_mjpeg(tmp_path / "source.avi", 320, 180, frames=12)
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_FORMAT, -1)
    first = cap.read()[1].reshape(-1).tobytes()
    cap.release()
    assert simplejpeg.decode_jpeg_header(first)[2:] == ("YCbCr", "422")
    decoded = simplejpeg.decode_jpeg(first, "BGR")
    clean = frames.moving_frame(frames.scale_to_fill(frames.photo("astronaut"), 320, 180), 0, 6)
    error = np.abs(decoded.astype(np.int16) - clean).astype(np.float32)
    assert 0.5 < error.mean() < 4.0               # the sensor noise is there, the picture too
    source = VideoFileSource(str(path), 320, 180, fps=200)
    try:
        got = [source.read(2.0) for _ in range(30)]   # 2.5 times round the 12-frame file
    finally:
        source.close()
    assert all(f is not None and f.image.shape == (180, 320, 3) for f in got)


def test_webcam_frames_carry_sensor_noise():
    noise = frames.sensor_noise((64, 64, 3), fields=2)
    assert not np.array_equal(noise[0], noise[1])
    assert abs(float(noise[0].std()) - frames.SENSOR_NOISE_SIGMA) < 0.1
    flat = np.full((64, 64, 3), 128, np.uint8)
    decoded = simplejpeg.decode_jpeg(frames.webcam_jpeg(flat, noise[0]), "BGR")
    assert decoded.std() > 0.7                      # a flat wall still flickers, as on a webcam
    assert simplejpeg.decode_jpeg(frames.webcam_jpeg(flat, np.zeros_like(noise[0])), "BGR").std() == 0
