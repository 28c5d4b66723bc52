"""The sink runs OpenCV on the thread count its config names (1 by default: least CPU per frame)."""

from __future__ import annotations

import cv2
import pytest

from capture_sink.app import SinkApp
from capture_sink.config import ConfigError, SinkConfig, validate


@pytest.fixture
def restore_opencv_threads():
    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_pipeline_sets_opencv_threads(threads, restore_opencv_threads):
    cv2.setNumThreads(4)
    app = SinkApp(validate(SinkConfig(source="demo", outputs=["null"], http=False, opencv_threads=threads)))
    app.init_pipeline()
    try:
        assert cv2.getNumThreads() == threads
    finally:
        app.close()


def test_default_is_one_thread():
    assert SinkConfig().opencv_threads == 1


def test_zero_threads_is_rejected_with_the_range():
    with pytest.raises(ConfigError, match="1..64"):
        validate(SinkConfig(source="demo", outputs=["null"], http=False, opencv_threads=0))
