"""Hot reload: a background file changed on disk shows up in the output without a restart
(real SinkApp, real segmenter, the app's own BackgroundWatcher thread)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture_sink.reload import BackgroundWatcher, background_file
from test_web_helpers import LiveSink, running_sink, wait_until

pytestmark = pytest.mark.slow

RED, BLUE, GREEN = (0, 0, 255), (255, 0, 0), (0, 255, 0)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> LiveSink:
    folder = tmp_path_factory.mktemp("reload")
    (folder / "pictures").mkdir()
    # the web page may only use files in --background-dir folders (and uploads)
    with running_sink(folder, background_dirs=[str(folder / "pictures")]) as sink:
        yield sink


@pytest.fixture
def tmp_path(live: LiveSink, request: pytest.FixtureRequest) -> Path:
    """Each test's own folder, inside the sink's allowed background folder."""
    folder = Path(live.app.config.background_dirs[0]) / request.node.name
    folder.mkdir()
    return folder


def write_picture(path: Path, bgr: tuple[int, int, int], *, atomic: bool = True) -> None:
    """A solid picture; `atomic` like an editor saving by rename, else rewritten in place."""
    ok, png = cv2.imencode(".png", np.full((180, 320, 3), bgr, np.uint8))
    assert ok
    if atomic:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(png.tobytes())
        os.replace(tmp, path)
    else:
        path.write_bytes(png.tobytes())


def corner_colour(live: LiveSink) -> np.ndarray:
    """Mean BGR of the top-left corner: background there, never the demo person."""
    return live.snapshot()[:30, :30].reshape(-1, 3).mean(axis=0)


def shows(live: LiveSink, bgr: tuple[int, int, int]) -> bool:
    return bool(np.abs(corner_colour(live) - np.array(bgr)).max() < 40)


def test_built_in_backgrounds_have_no_file() -> None:
    for spec in ("default", "holodeck", "blur", "blur:8", "green", "none", "#1e90ff", "navy"):
        assert background_file(spec) is None, spec
    assert background_file("~/bg.jpg") == Path("~/bg.jpg").expanduser()


def test_changed_picture_is_picked_up(live: LiveSink, tmp_path: Path) -> None:
    picture = tmp_path / "room.png"
    write_picture(picture, RED)
    live.change(background=str(picture))
    assert shows(live, RED)
    write_picture(picture, BLUE)                        # saved by rename
    wait_until(lambda: shows(live, BLUE), 5, "the blue picture in the output")
    time.sleep(0.05)
    write_picture(picture, GREEN, atomic=False)         # rewritten in place
    wait_until(lambda: shows(live, GREEN), 5, "the green picture in the output")
    assert live.status()["settings"]["background"] == str(picture)


def test_a_broken_save_keeps_the_previous_picture(live: LiveSink, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    picture = tmp_path / "room.png"
    write_picture(picture, RED)
    live.change(background=str(picture))
    assert shows(live, RED)
    reloads = live.app.background_watcher.reloads
    with caplog.at_level(logging.WARNING, logger="capture_sink.reload"):
        picture.write_bytes(b"\x89PNG\r\n\x1a\n half a file")
        wait_until(lambda: "cannot be used" in caplog.text, 5, "a warning about the broken file")
    assert shows(live, RED) and live.app.background_watcher.reloads == reloads
    assert caplog.text.count("cannot be used") == 1      # said once, not every poll
    write_picture(picture, BLUE)
    wait_until(lambda: shows(live, BLUE), 5, "the repaired picture in the output")


def test_a_deleted_picture_keeps_showing(live: LiveSink, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    picture = tmp_path / "room.png"
    write_picture(picture, BLUE)
    live.change(background=str(picture))
    with caplog.at_level(logging.WARNING, logger="capture_sink.reload"):
        picture.unlink()
        wait_until(lambda: "is gone" in caplog.text, 5, "a warning about the missing file")
    assert shows(live, BLUE)
    write_picture(picture, RED)
    wait_until(lambda: shows(live, RED), 5, "the picture put back")


def test_a_file_is_read_only_once_it_stops_changing(live: LiveSink, tmp_path: Path) -> None:
    """A poll that sees a change waits for the next poll to see the same file before reloading."""
    picture = tmp_path / "slow.png"
    write_picture(picture, RED)
    live.change(background=str(picture))
    watcher = BackgroundWatcher(live.app, interval_s=60)   # polled by hand below
    assert watcher.poll() is False                          # baseline
    write_picture(picture, BLUE)
    assert watcher.poll() is False                          # changed since the last poll: maybe still being written
    assert watcher.poll() is True                           # unchanged for one poll: reload
    assert watcher.poll() is False                          # nothing new
    assert watcher.reloads == 1
