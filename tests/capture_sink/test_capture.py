"""Sources: video file, image, demo; newest-frame-only behaviour; errors that name the fix."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture_sink.sources import (CaptureError, Frame, camera_error, create_source, list_cameras,
                                  scale_to_fill)
from helpers_video import write_bar_video

W, H = 160, 120


def write_video(path: Path, frames: int = 10, fps: float = 20.0) -> Path:
    return write_bar_video(path, frames, fps, W, H)


def read_n(source, n: int, timeout_s: float = 2.0) -> list[Frame]:
    frames = []
    for _ in range(n):
        frame = source.read(timeout_s)
        assert frame is not None
        frames.append(frame)
    return frames


def test_video_file_frames_are_in_order_and_loop(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=6, fps=60)
    with create_source(str(video), width=W, height=H, fps=30) as source:
        assert source.fps == pytest.approx(60, abs=0.5)   # paced at the file's own rate
        frames = read_n(source, 14)
    seqs = [f.seq for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(b.capture_time >= a.capture_time for a, b in zip(frames, frames[1:]))
    assert frames[-1].seq >= 6  # more frames than the file has: it looped


def test_mjpeg_files_are_decoded_packet_by_packet_like_a_webcam(tmp_path: Path) -> None:
    """An MJPEG file's frames come from cv2.imdecode of each JPEG packet (as OpenCV's V4L2
    backend decodes a webcam's MJPG), the same pictures FFmpeg's decoder gives, and loop."""
    video = write_video(tmp_path / "clip.avi", frames=6, fps=60)
    reference = cv2.VideoCapture(str(video))
    expected = [reference.read()[1] for _ in range(6)]
    reference.release()
    with create_source(str(video), width=W, height=H, fps=30, loop=True) as source:
        assert source._jpeg, "an MJPEG file must be read as JPEG packets"
        frames = read_n(source, 8)
    for i, frame in enumerate(frames):
        diff = np.abs(frame.image.astype(int) - expected[frame.seq % 6])
        assert diff.mean() < 1.5 and diff.max() <= 40, f"frame {frame.seq}: another picture (mean diff {diff.mean()})"
    bars = [int((f.image[H // 2, :, 2] > 100).sum()) for f in frames[:6]]
    assert bars == sorted(bars) and bars[0] < bars[-1]      # the growing bar: frames in order


def test_video_file_without_loop_ends(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=4, fps=100)
    with create_source(str(video), width=W, height=H, loop=False) as source:
        seen = 0
        while source.read(2.0) is not None:
            seen += 1
        assert source.ended and 1 <= seen <= 4
        assert source.captured == 4


def test_video_is_not_read_faster_than_its_fps(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", frames=10, fps=20)
    with create_source(str(video), width=W, height=H) as source:
        source.read(2.0)
        start, captured0 = time.monotonic(), source.captured
        time.sleep(0.5)
        produced = source.captured - captured0
        assert produced <= 20 * (time.monotonic() - start) + 2


def test_video_is_scaled_to_fill_the_requested_size(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi")
    with create_source(str(video), width=320, height=180) as source:
        assert read_n(source, 1)[0].image.shape == (180, 320, 3)


def test_image_source_repeats_the_image(tmp_path: Path) -> None:
    image = cv2.resize(cv2.imread(str(Path(__file__).parents[2] / "capture_sink/assets/demo_person.jpg")),
                       (200, 100))
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    with create_source(str(path), width=200, height=100, fps=50) as source:
        a, b = read_n(source, 2)
    assert b.seq > a.seq
    assert np.array_equal(a.image, image) and a.image is b.image
    assert not a.image.flags.writeable  # shared between frames: read-only


def test_demo_source_shows_a_moving_person() -> None:
    with create_source("demo", width=320, height=180, fps=30) as source:
        first = read_n(source, 1)[0]
        time.sleep(0.4)
        later = read_n(source, 1)[0]
    assert first.image.shape == (180, 320, 3)
    assert first.image.std() > 20  # a photo, not a flat colour
    assert np.abs(first.image.astype(np.int16) - later.image).mean() > 1.0  # it moves


def test_slow_reader_gets_the_newest_frame_and_never_a_queue(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((H, W, 3), 90, np.uint8))
    with create_source(str(path), width=W, height=H, fps=200) as source:
        seqs, ages = [], []
        for _ in range(6):
            frame = source.read(1.0)
            assert frame is not None
            seqs.append(frame.seq)
            ages.append(time.monotonic() - frame.capture_time)
            time.sleep(0.1)  # ~20 frames arrive meanwhile
        again = source.read(0.0)
        assert again is None or again.seq > seqs[-1]  # never the same frame twice
        dropped = source.dropped
    gaps = np.diff(seqs)
    assert (gaps >= 1).all()
    assert gaps.max() > 1 and dropped > 0
    # each frame handed out is fresh, not one queued during the 0.1 s sleep
    assert np.median(ages[1:]) < 0.06


def test_missing_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="not found: give an existing video or image file"):
        create_source(str(tmp_path / "nope.mp4"))


def test_unreadable_video_names_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    with pytest.raises(CaptureError, match="cannot read video .*convert it"):
        create_source(str(bad))


def test_unreadable_image_names_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG nothing")
    with pytest.raises(CaptureError, match="cannot read image .*PNG or JPEG"):
        create_source(str(bad))


def test_bad_camera_lists_the_cameras_that_exist() -> None:
    with pytest.raises(CaptureError) as info:
        create_source("/dev/video97")
    message = str(info.value)
    assert "/dev/video97 does not exist" in message
    existing = list_cameras()
    assert f"cameras found: {', '.join(existing) if existing else 'none'}" in message
    assert "\n" not in message


def test_camera_index_is_a_device_number() -> None:
    with pytest.raises(CaptureError, match="/dev/video63 does not exist"):
        create_source("63")


def test_camera_listing_is_numeric(tmp_path: Path) -> None:
    for name in ("video10", "video2", "video0"):
        (tmp_path / name).touch()
    assert [Path(p).name for p in list_cameras(str(tmp_path / "video*"))] == ["video0", "video2", "video10"]


def test_camera_that_exists_but_will_not_open_says_busy(tmp_path: Path) -> None:
    device = tmp_path / "video5"
    device.touch()
    message = str(camera_error(str(device), [str(device)]))
    assert "busy in another app" in message and str(device) in message


def test_camera_without_permission_names_the_video_group(tmp_path: Path) -> None:
    import os
    device = tmp_path / "video6"
    device.touch()
    device.chmod(0)
    if os.access(device, os.R_OK):  # root ignores modes
        pytest.skip("running as root: file modes do not deny access")
    assert "'video' group" in str(camera_error(str(device), []))


def test_scale_to_fill_keeps_aspect_and_crops_the_centre() -> None:
    image = np.zeros((100, 400, 3), np.uint8)
    image[:, 150:250] = 255  # a centred white block
    out = scale_to_fill(image, 100, 100)
    assert out.shape == (100, 100, 3)
    assert out.mean() > 250  # the centre 100 columns are the white block


def test_bad_size_is_refused() -> None:
    with pytest.raises(CaptureError, match="invalid"):
        create_source("demo", width=0)
