"""The MJPEG decoder of the webcam and MJPEG-file sources: exact against OpenCV, fast within its
promise (luma exact within rounding, chroma close), broken frames dropped with a log, not raised."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.frames import photo
from capture_sink.sources import create_source, scale_to_fill
from capture_sink.sources.camera import camera_image
from capture_sink.sources.jpeg import JpegDecoder
from helpers_video import write_bar_video


def webcam_jpeg(sampling: int = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, quality: int = 85) -> bytes:
    """A real 640x360 photo as a webcam's MJPG frame: baseline JPEG, 4:2:0 unless told."""
    image = scale_to_fill(photo("astronaut"), 640, 360)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality,
                                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    assert ok
    return data.tobytes()


def opencv(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize("sampling", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
                                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
def test_exact_mode_is_bit_exact_with_opencv(sampling: int) -> None:
    data = webcam_jpeg(sampling)
    image = JpegDecoder("exact").decode(data)
    np.testing.assert_array_equal(image, opencv(data))


def test_fast_mode_keeps_luma_and_stays_close_in_colour() -> None:
    data = webcam_jpeg()
    fast, exact = JpegDecoder("fast").decode(np.frombuffer(data, np.uint8)), opencv(data)
    assert fast.shape == exact.shape == (360, 640, 3) and fast.dtype == np.uint8
    assert not np.array_equal(fast, exact), "fast mode upsamples the chroma another way: not the same bytes"
    grey_diff = np.abs(cv2.cvtColor(fast, cv2.COLOR_BGR2GRAY).astype(int) - cv2.cvtColor(exact, cv2.COLOR_BGR2GRAY))
    # the hologram's tint reads only the grey level: off by more than rounding only where a
    # saturated colour clips (well under 1% of pixels)
    assert grey_diff.mean() < 0.05 and (grey_diff > 1).mean() < 0.005 and grey_diff.max() <= 12
    mse = np.mean((fast.astype(float) - exact) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 40                   # colour: far below what a call's encoder loses


def test_a_frame_that_is_not_a_jpeg_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    decoder = JpegDecoder()
    with caplog.at_level(logging.WARNING):
        assert decoder.decode(b"\x00\x01garbage, not a JPEG" * 20) is None
        assert decoder.decode(b"") is None
    assert decoder.broken == 2
    assert "would not decode" in caplog.text and "cable" in caplog.text   # one line naming what to check


def test_a_truncated_frame_decodes_what_arrived() -> None:
    """A frame cut short on the USB bus decodes with its top intact (libjpeg recovers), as with OpenCV."""
    data = webcam_jpeg()
    cut = data[: len(data) * 2 // 3]
    image, exact = JpegDecoder("exact").decode(cut), opencv(data)
    assert image is not None and image.shape == exact.shape
    np.testing.assert_array_equal(image[:64], exact[:64])


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of fast, exact"):
        JpegDecoder("quick")


def test_camera_reads_raw_jpeg_or_opencv_bgr() -> None:
    decoder, data = JpegDecoder("exact"), webcam_jpeg()
    raw = np.frombuffer(data, np.uint8).reshape(1, -1)       # OpenCV's read with CONVERT_RGB off
    np.testing.assert_array_equal(camera_image(raw, decoder), opencv(data))
    bgr = opencv(data)
    assert camera_image(bgr, decoder) is bgr                   # a format OpenCV converted itself
    assert camera_image(np.empty((1, 0), np.uint8), decoder) is None
    assert camera_image(None, decoder) is None
    assert camera_image(np.zeros((1, 500), np.uint8), decoder) is None and decoder.broken == 1


def test_a_broken_packet_in_an_mjpeg_file_is_skipped_not_taken_for_its_end(tmp_path: Path) -> None:
    """Frame 3 of 6 loses its JPEG start marker: the source drops it and plays on without rewinding."""
    path = write_bar_video(tmp_path / "clip.avi", frames=6, fps=60)   # 160x120, a growing bar
    blob = bytearray(path.read_bytes())
    starts = [i for i in range(len(blob) - 3) if blob[i:i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == 6
    blob[starts[3]:starts[3] + 2] = b"\x00\x00"
    path.write_bytes(bytes(blob))

    with create_source(str(path), width=160, height=120, fps=30, loop=False) as source:
        bars = []
        while (frame := source.read(2.0)) is not None:
            bars.append(int((frame.image[60, :, 2] > 100).sum()))
        assert source._decoder.broken == 1
    assert len(bars) == 5 and bars == sorted(bars)              # frames 0-2 and 4-5, in order, no rewind
    assert 4 * 160 // 6 - 8 <= bars[3] <= 5 * 160 // 6 + 8           # the frame after the broken one


def _without_huffman_tables(data: bytes) -> bytes:
    """The JPEG with its DHT segments cut out, as many UVC webcams send MJPG frames (the decoder
    must fall back to the standard tables, which is what OpenCV's encoder wrote)."""
    out, i = bytearray(data[:2]), 2
    while i < len(data):
        assert data[i] == 0xFF
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:                               # start of scan: the rest is entropy-coded data
            out += data[i:]
            break
        if marker != 0xC4:
            out += data[i:i + 2 + length]
        i += 2 + length
    return bytes(out)


def test_a_webcam_frame_without_huffman_tables_decodes_with_the_standard_ones() -> None:
    data = webcam_jpeg()
    bare = _without_huffman_tables(data)
    assert b"\xff\xc4" not in bare[:bare.index(b"\xff\xda")] and len(bare) < len(data)
    for mode in ("exact", "fast"):
        np.testing.assert_array_equal(JpegDecoder(mode).decode(bare), JpegDecoder(mode).decode(data))


def test_without_simplejpeg_frames_decode_with_opencv_and_the_log_names_the_fix(monkeypatch, caplog) -> None:
    from capture_sink.sources import jpeg
    monkeypatch.setattr(jpeg, "simplejpeg", None)
    data = webcam_jpeg()
    with caplog.at_level(logging.WARNING):
        decoder = JpegDecoder()
    assert decoder.library == "cv2.imdecode" and "pip install" in caplog.text
    np.testing.assert_array_equal(decoder.decode(data), opencv(data))
    assert decoder.decode(b"not a jpeg at all") is None and decoder.broken == 1
