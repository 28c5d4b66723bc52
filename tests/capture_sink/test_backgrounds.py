"""Backgrounds: image fill, video, blur, colours, green, none, default; errors that name the fix."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from capture_sink.backgrounds import (BackgroundError, BlurBackground, HolodeckBackground,
                                      NoneBackground, create_background, parse_colour)

W, H = 320, 180


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.ascontiguousarray(cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (W, H)))


def test_image_is_scaled_to_fill_with_aspect_kept(tmp_path: Path, frame: np.ndarray) -> None:
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)      # left quarter blue: cropped away for a 16:9 frame? no: kept
    wide[:, 150:250] = (0, 0, 255)   # centre red
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), wide)
    bg = create_background(str(path)).render(frame)
    assert bg.shape == frame.shape and bg.dtype == np.uint8
    # 400x100 scaled by 1.8 to 720x180, centre-cropped to 320: only the red centre stays
    assert (bg[:, W // 2] == (0, 0, 255)).all()
    assert not (bg == (255, 0, 0)).all(axis=2).any()


def test_image_is_cached_per_size(tmp_path: Path, frame: np.ndarray) -> None:
    path = tmp_path / "coffee.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    background = create_background(str(path))
    first = background.render(frame)
    assert background.render(frame) is first
    assert background.render(np.zeros((50, 60, 3), np.uint8)).shape == (50, 60, 3)


def test_video_background_loops_at_its_own_pace(tmp_path: Path, frame: np.ndarray) -> None:
    path = tmp_path / "bg.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (160, 90))
    for i in range(5):
        writer.write(np.full((90, 160, 3), 40 * i + 20, np.uint8))
    writer.release()
    with create_background(str(path)) as background:
        seen = set()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and len(seen) < 5:
            bg = background.render(frame)
            assert bg.shape == frame.shape
            seen.add(int(np.median(bg)) // 20)
            time.sleep(0.01)
    assert len(seen) >= 4  # several different frames of the 5-frame clip came by


def test_blur_is_a_blurred_real_background(frame: np.ndarray) -> None:
    bg = create_background("blur:8").render(frame)
    assert bg.shape == frame.shape
    sharpness = lambda img: cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
    assert sharpness(bg) < 0.05 * sharpness(frame)
    assert abs(float(bg.mean()) - float(frame.mean())) < 3  # same scene, same brightness


def test_blur_with_alpha_keeps_the_person_out_of_the_background() -> None:
    frame = np.full((H, W, 3), 200, np.uint8)
    frame[:, 140:180] = (0, 0, 255)           # a red "person"
    alpha = np.zeros((H, W), np.uint8)
    alpha[:, 140:180] = 255
    blur = BlurBackground(12)
    plain = blur.render(frame).copy()
    aware = blur.render(frame, alpha)
    beside = (slice(None), slice(185, 200))   # background just right of the person
    redness = lambda img: float(img[beside][..., 2].astype(int).mean() - img[beside][..., 0].mean())
    assert redness(plain) > 10                # the person bleeds into a plain blur
    assert redness(aware) < 0.3 * redness(plain)


def test_solid_colours(frame: np.ndarray) -> None:
    assert (create_background("#1e90ff").render(frame) == (255, 144, 30)).all()
    assert (create_background("navy").render(frame) == parse_colour("navy")).all()
    assert (create_background("green").render(frame) == (0, 255, 0)).all()


def test_none_passes_the_frame_through(frame: np.ndarray) -> None:
    assert isinstance(create_background("none"), NoneBackground)
    assert create_background("none").render(frame) is frame


def test_default_is_a_generated_holodeck(frame: np.ndarray) -> None:
    background = create_background("default")
    assert isinstance(background, HolodeckBackground)
    bg = background.render(frame)
    assert bg.shape == frame.shape
    assert bg.mean() < 90                           # a dark room
    assert (bg[..., 2].astype(int) - bg[..., 0] > 60).any()  # with amber grid lines
    assert not bg.flags.writeable


@pytest.mark.parametrize("spec, message", [
    ("missing.png", "not found: give an image or video file"),
    ("#12345", "is not #rrggbb"),
    ("blur:lots", "is not a number"),
    ("blur:0", "out of range"),
])
def test_bad_specs_name_the_fix(spec: str, message: str) -> None:
    with pytest.raises(BackgroundError, match=message):
        create_background(spec)


def test_unreadable_image_names_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(BackgroundError, match="cannot read background image .*PNG or JPEG"):
        create_background(str(bad))


def test_unreadable_video_names_the_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    with pytest.raises(BackgroundError, match="cannot read background video .*convert it"):
        create_background(str(bad))
