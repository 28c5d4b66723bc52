"""Fail closed, on real output frames of a real sink process: the room never leaks.

The sink reads a real person photo (a static camera), composites it with `--effect none` (inside
the mask the output *is* the camera picture) over a known background, and writes every output
frame losslessly (PNG sequence, each file's mtime is when the writer wrote it). A camera pixel is
one within a few levels of the photo where the photo and the background differ clearly.

Checked on every frame, not the last: no camera pixel outside the person (the model's own mask of
the photo, widened for refinement), and no camera pixel at all once no valid mask can exist (no
segmenter; `kill -9`; SIGSTOP for longer than the max mask age); those frames show the background
and the caption instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from helpers_transport import REPO, free_port, wait_until
from segmenter.mask_image import full_resolution_mask

pytestmark = pytest.mark.slow

WIDTH, HEIGHT, FPS = 640, 480, 15
MAX_AGE_S = 0.5                 # the default --max-mask-age-ms
SLACK_S = 0.7                   # capture -> write on a busy 2-core machine, generously
CAMERA_TOLERANCE = 6            # levels: lossless PNG, compositing rounds by at most 1
DISTINCT = 40                   # photo and background differ by more than this (some channel)
LEAK_PIXELS = 100               # "no region": fewer coincidental pixels than a 10x10 patch


@pytest.fixture(scope="module")
def scene(tmp_path_factory, selfie_reference):
    folder = tmp_path_factory.mktemp("failclosed-scene")
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    photo = cv2.resize(photo[64:448], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    ramp = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    background = ((1 - ramp) * np.array([200, 60, 20]) + ramp * np.array([20, 140, 250])).astype(np.uint8)
    background = np.repeat(background, HEIGHT, axis=0)
    cv2.imwrite(str(folder / "photo.png"), photo)
    cv2.imwrite(str(folder / "background.png"), background)
    mask = full_resolution_mask(selfie_reference, photo)
    person = cv2.dilate((mask >= 64).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    distinct = np.abs(photo.astype(int) - background).max(axis=2) > DISTINCT
    return folder, photo, background, person, distinct


def camera_pixels(frame: np.ndarray, photo: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    return (np.abs(frame.astype(int) - photo).max(axis=2) <= CAMERA_TOLERANCE) & distinct


def caption_shown(frame: np.ndarray, background: np.ndarray) -> bool:
    """The caption sits in the bottom-left corner: there the frame differs from the background."""
    corner = (slice(HEIGHT - 60, HEIGHT), slice(0, 260))
    return np.abs(frame[corner].astype(int) - background[corner]).mean() > 10


def output_frames(folder: Path) -> list[tuple[float, np.ndarray]]:
    """(write time, image) of every frame the sink wrote, in order; black start-up frames left out."""
    out = []
    for path in sorted(folder.glob("frame_*.png")):
        image = cv2.imread(str(path))
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3), path
        if image.max() > 0:
            out.append((path.stat().st_mtime, image))
    return out


def sink_command(scene_folder: Path, out: Path, endpoint: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "capture_sink", "run", "--bind", endpoint, "--source", str(scene_folder / "photo.png"),
            "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS), "--effect", "none",
            "--background", str(scene_folder / "background.png"), "--output", "file",
            "--file", str(out / "frame_%05d.png"), "--no-http", "--segmenting", "on", *extra]


def start_sink(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)


def stop_sink(sink: subprocess.Popen, log: Path) -> str:
    if sink.poll() is None:
        sink.send_signal(signal.SIGTERM)
        try:
            sink.wait(20)
        except subprocess.TimeoutExpired:
            sink.kill()
            sink.wait(5)
    text = log.read_text(errors="replace")
    assert sink.returncode == 0, text[-3000:]
    return text


def assert_never_outside_person(frames, photo, person, distinct) -> None:
    for i, (_, frame) in enumerate(frames):
        leak = int((camera_pixels(frame, photo, distinct) & ~person).sum())
        assert leak < LEAK_PIXELS, f"frame {i}: {leak} camera pixels outside the person"


def assert_background_only(frames, photo, background, distinct, what: str) -> None:
    for i, (_, frame) in enumerate(frames):
        leak = int(camera_pixels(frame, photo, distinct).sum())
        assert leak < LEAK_PIXELS, f"{what}, frame {i}: {leak} camera pixels"
        assert caption_shown(frame, background), f"{what}, frame {i}: no 'waiting for a segmenter' caption"
        body = (slice(0, HEIGHT - 70), slice(None))      # all but the caption's strip
        diff = np.abs(frame[body].astype(int) - background[body])
        assert np.percentile(diff, 99) <= 3, f"{what}, frame {i}: not the background (a black or other frame?)"


def person_frames(frames, photo, person, distinct) -> list[int]:
    """Indexes of frames that show the person (most of the person's distinct pixels are camera pixels)."""
    inside = person & distinct
    return [i for i, (_, frame) in enumerate(frames)
            if (camera_pixels(frame, photo, distinct) & inside).sum() > 0.3 * inside.sum()]


def test_without_a_segmenter_every_frame_is_the_background_with_a_caption(tmp_path, scene):
    folder, photo, background, person, distinct = scene
    cmd = sink_command(folder, tmp_path, f"tcp://127.0.0.1:{free_port()}", "--max-frames", "30")
    sink = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert sink.returncode == 0, sink.stderr[-3000:]
    frames = output_frames(tmp_path)
    assert len(frames) >= 20
    assert_background_only(frames, photo, background, distinct, "no segmenter")
    assert sink.stderr.count("no valid mask") == 1, "the waiting state is logged once, not per frame"


def test_no_mask_blur_leaves_nothing_readable(tmp_path, scene):
    folder, photo, background, person, distinct = scene
    cmd = sink_command(folder, tmp_path, f"tcp://127.0.0.1:{free_port()}", "--max-frames", "15", "--no-mask", "blur")
    sink = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert sink.returncode == 0, sink.stderr[-3000:]
    frames = output_frames(tmp_path)
    assert len(frames) >= 10
    detail = cv2.Laplacian(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), cv2.CV_32F).var()
    for i, (_, frame) in enumerate(frames):
        assert camera_pixels(frame, photo, distinct).sum() < 0.05 * distinct.sum(), f"frame {i} is the camera"
        assert caption_shown(frame, cv2.GaussianBlur(photo, (0, 0), 30)), f"frame {i}: no caption"
        gray = cv2.cvtColor(frame[:HEIGHT - 70], cv2.COLOR_BGR2GRAY)
        # edges (text, faces, shelves) are what makes a room readable: almost none are left
        assert cv2.Laplacian(gray, cv2.CV_32F).var() < 0.01 * detail, f"frame {i} is not blurred enough"


def test_no_mask_camera_is_the_old_opt_in_behaviour(tmp_path, scene):
    """The control: the same check does see the camera when the user asks for it."""
    folder, photo, background, person, distinct = scene
    cmd = sink_command(folder, tmp_path, f"tcp://127.0.0.1:{free_port()}", "--max-frames", "10", "--no-mask", "camera")
    sink = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert sink.returncode == 0, sink.stderr[-3000:]
    assert "--no-mask camera" in sink.stderr      # warned at start
    frames = output_frames(tmp_path)
    assert frames and all(camera_pixels(f, photo, distinct).sum() > 0.95 * distinct.sum() for _, f in frames)


def _run_with_a_fault(tmp_path, scene, segmenter_process, fault) -> tuple[list, dict, str]:
    """Start a segmenter and a sink, wait for masks, run `fault(segmenter)` (returns its times), stop."""
    folder, photo, background, person, distinct = scene
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    segmenter = segmenter_process.start(connect=[endpoint])
    wait_until(lambda: "serving" in segmenter.log() or not segmenter.alive(), 90, "the segmenter to load")
    assert segmenter.alive(), segmenter.log()[-2000:]
    log = tmp_path / "sink.log"
    out = tmp_path / "frames"
    out.mkdir()
    sink = start_sink(sink_command(folder, out, endpoint), log)
    try:
        wait_until(lambda: "masks flowing" in log.read_text() or sink.poll() is not None, 60, "the first masks")
        time.sleep(2.0)                                   # frames with the person, before the fault
        times = fault(segmenter)
    finally:
        text = stop_sink(sink, log)
    return output_frames(out), times, text


def test_segmenter_killed_mid_stream_hides_the_person_within_the_max_age(tmp_path, scene, segmenter_process):
    _, photo, background, person, distinct = scene

    def kill(segmenter):
        killed = time.time()
        segmenter.kill()                                  # kill -9: no goodbye
        time.sleep(3.0)
        return {"killed": killed}

    frames, times, log = _run_with_a_fault(tmp_path, scene, segmenter_process, kill)
    assert_never_outside_person(frames, photo, person, distinct)
    before = [f for f in frames if f[0] < times["killed"]]
    after = [f for f in frames if f[0] > times["killed"] + MAX_AGE_S + SLACK_S]
    assert len(person_frames(before, photo, person, distinct)) >= 10, "masks flowed before the kill"
    assert len(after) >= 15
    assert_background_only(after, photo, background, distinct, "after kill -9")
    assert log.count("no valid mask (the newest mask is") == 1, "the stale state is logged once"


def test_segmenter_stopped_longer_than_the_max_age_hides_then_shows_again(tmp_path, scene, segmenter_process):
    _, photo, background, person, distinct = scene

    def stop_and_continue(segmenter):
        stopped = time.time()
        segmenter.signal(signal.SIGSTOP)
        time.sleep(3.0)
        resumed = time.time()
        segmenter.signal(signal.SIGCONT)
        time.sleep(8.0)                                   # a dropped replica reconnects within a few seconds
        return {"stopped": stopped, "resumed": resumed}

    frames, times, log = _run_with_a_fault(tmp_path, scene, segmenter_process, stop_and_continue)
    assert_never_outside_person(frames, photo, person, distinct)
    during = [f for f in frames if times["stopped"] + MAX_AGE_S + SLACK_S < f[0] < times["resumed"]]
    assert len(during) >= 15
    assert_background_only(during, photo, background, distinct, "while the segmenter is stopped")
    later = [f for f in frames if f[0] > times["resumed"]]
    assert len(person_frames(later, photo, person, distinct)) >= 10, "masks flow again after SIGCONT"
    assert "masks flowing again" in log
