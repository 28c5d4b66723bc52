"""Motion skip in the running sink: a still picture is segmented about once, a moving video every frame.

A real SinkApp (image / MJPEG video file source, null output) and a real segmenter process over
ZeroMQ; the counts are the dispatcher's frames sent and the sink's mask counters.
"""

from __future__ import annotations

import math
import threading
import time

import cv2
import numpy as np
import pytest

from capture_sink.app import SinkApp
from capture_sink.motion import reuse_limit_s
from capture_sink.config import SinkConfig, validate
from helpers_transport import free_port, photo, wait_until

pytestmark = pytest.mark.slow
WIDTH, HEIGHT, FPS = 640, 360, 30


def _run(source: str, endpoint: str, seconds: float, **overrides) -> tuple[dict, dict]:
    config = validate(SinkConfig(source=source, width=WIDTH, height=HEIGHT, fps=FPS, outputs=["null"],
                                 bind=[endpoint], http=False, segmenting_mode="on", **overrides))
    app = SinkApp(config)
    app.start()
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: app.dispatcher.latest() is not None, 60, "the first mask")
        before_sent, before = app.dispatcher.stats()["sent"], dict(app.stats.counters)
        time.sleep(seconds)
        sent, after = app.dispatcher.stats()["sent"] - before_sent, dict(app.stats.counters)
    finally:
        app.stop()
        thread.join(5)
        app.close()
    counts = {k: after.get(k, 0) - before.get(k, 0) for k in ("frames", "own_mask", "older_mask", "still_mask")}
    return {"sent": sent}, counts


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    picture = cv2.resize(cv2.cvtColor(photo("astronaut"), cv2.COLOR_RGB2BGR), (WIDTH, HEIGHT))
    still = folder / "still.png"
    cv2.imwrite(str(still), picture)
    video = folder / "moving.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for i in range(60):                                        # a slow sideways sway, like a person
        shift = np.float32([[1, 0, 12 * math.sin(2 * math.pi * i / 60)], [0, 1, 0]])
        writer.write(cv2.warpAffine(picture, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    return still, video


def test_still_picture_reuses_the_mask_and_motion_segments_again(segmenter_process, media):
    still, video = media
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    segmenter_process.start(connect=[endpoint])

    seconds = 2.5
    sent, counts = _run(str(still), endpoint, seconds)
    # at most a refresh per reuse limit (80% of the fail-closed max mask age, 0.4 s by default)
    refreshes = math.ceil(seconds / reuse_limit_s(SinkConfig().max_mask_age_ms)) + 1
    assert counts["frames"] >= 40, counts
    assert sent["sent"] <= refreshes, (sent, counts)
    assert counts["still_mask"] >= counts["frames"] - refreshes, counts

    sent, counts = _run(str(video), endpoint, 2.5)
    assert counts["frames"] >= 40, counts
    assert sent["sent"] >= 0.9 * counts["frames"], (sent, counts)
    assert counts["still_mask"] <= 0.1 * counts["frames"], counts

    sent, counts = _run(str(still), endpoint, 2.0, motion_skip=False)
    assert sent["sent"] >= 0.9 * counts["frames"] and counts["still_mask"] == 0, (sent, counts)
