"""The whole thin path over real ZeroMQ: a segmenter process and a sink process on loopback.

The sink reads a real person photo, sends model-size frames to the segmenter, composites the
frame over a known background image by the returned mask and writes lossless output frames.
Inside the person the output must be the photo; far outside it must be the background.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from bench.harness import free_port
from helpers_transport import wait_until
from segmenter.mask_image import full_resolution_mask

WIDTH, HEIGHT = 640, 480
FRAMES = 90


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    photo = cv2.resize(photo[64:448], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    # A smooth known background: a blue-to-orange ramp with a magenta band, nothing like the photo.
    ramp = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :, None]
    background = ((1 - ramp) * np.array([200, 60, 20]) + ramp * np.array([20, 140, 250])).astype(np.uint8)
    background = np.repeat(background, HEIGHT, axis=0)
    background[200:240] = (255, 0, 255)
    cv2.imwrite(str(folder / "photo.png"), photo)
    cv2.imwrite(str(folder / "background.png"), background)
    return folder, photo, background


def test_sink_composites_photo_over_background_by_the_segmenters_mask(tmp_path, scene, selfie_reference):
    folder, photo, background = scene
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    seg_log = tmp_path / "segmenter.log"
    with open(seg_log, "wb") as log:
        segmenter = subprocess.Popen([sys.executable, "-m", "segmenter", "serve", "--connect", endpoint,
                                      "--threads", "1"], stdout=subprocess.DEVNULL, stderr=log)
    try:
        # The model loads before the replica says hello; start the sink once it serves.
        wait_until(lambda: "serving" in seg_log.read_text() or segmenter.poll() is not None, 60,
                   "the segmenter to load its model")
        out_pattern = tmp_path / "frame_%05d.png"
        sink = subprocess.run(
            [sys.executable, "-m", "capture_sink", "run", "--bind", endpoint, "--source", str(folder / "photo.png"),
             "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", "30", "--effect", "none",
             "--background", str(folder / "background.png"), "--output", "file", "--file", str(out_pattern),
             "--no-http", "--max-frames", str(FRAMES)],
            capture_output=True, text=True, timeout=120)
        assert sink.returncode == 0, sink.stderr[-2000:]
    finally:
        segmenter.terminate()
        segmenter.wait(timeout=30)
    assert segmenter.returncode == 0, seg_log.read_text()[-2000:]

    frames = sorted(tmp_path.glob("frame_*.png"))
    assert len(frames) >= FRAMES // 2
    output = cv2.imread(str(frames[-1]))
    assert output.shape == (HEIGHT, WIDTH, 3)

    mask = full_resolution_mask(selfie_reference, photo)
    kernel = np.ones((31, 31), np.uint8)
    inside = cv2.erode((mask >= 250).astype(np.uint8), kernel) > 0
    far_outside = cv2.erode((mask <= 5).astype(np.uint8), kernel) > 0
    assert inside.sum() > 10_000 and far_outside.sum() > 10_000
    diff_in = np.abs(output[inside].astype(int) - photo[inside])
    diff_out = np.abs(output[far_outside].astype(int) - background[far_outside])
    assert np.percentile(diff_in, 99) <= 3, "pixels inside the person must come from the frame"
    assert np.percentile(diff_out, 99) <= 3, "pixels far from the person must come from the background"
    # And the output is really a composite, not the photo passed through.
    assert np.abs(output[far_outside].astype(int) - photo[far_outside]).mean() > 30
