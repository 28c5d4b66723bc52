"""On demand: viewers of the virtual camera (other processes reading it) and of the web preview
turn segmenting on; nobody watching turns it off. Real processes, a real SinkApp, the FUSE fake device."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capture_sink.config import ConfigError
from capture_sink.viewers import ViewerWatch, device_readers, effective_mode, running_in_container
from test_web_helpers import running_sink, wait_until

HOLDER = """
import os, sys, time
fd = os.open(sys.argv[1], {flags})
print("open", flush=True)
sys.stdin.readline()   # hold the device until the test says so
"""


class Holder:
    """Another process that keeps a file open (like Zoom keeping the camera open)."""

    def __init__(self, path: Path | str, flags: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(flags=flags), str(path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "open"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)
        self.proc.stdout.close()


@pytest.fixture
def device_file(tmp_path: Path) -> Path:
    path = tmp_path / "video20"
    path.write_bytes(b"")
    return path


def test_readers_are_found_and_writers_are_not(device_file: Path) -> None:
    assert device_readers(device_file) == []
    reader = Holder(device_file, "os.O_RDONLY")
    both = Holder(device_file, "os.O_RDWR")
    writer = Holder(device_file, "os.O_WRONLY")
    try:
        assert device_readers(device_file) == sorted([reader.pid, both.pid])
        assert device_readers(device_file, exclude_pids=frozenset({reader.pid})) == [both.pid]
    finally:
        for holder in (reader, both, writer):
            holder.close()
    assert device_readers(device_file) == []


def test_own_process_never_counts(device_file: Path) -> None:
    fd = os.open(device_file, os.O_RDONLY)
    try:
        assert device_readers(device_file) == []
        assert device_readers(device_file, exclude_pids=frozenset()) == [os.getpid()]
    finally:
        os.close(fd)


def test_a_symlinked_device_path_is_resolved(device_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "holocam-camera"
    link.symlink_to(device_file)
    reader = Holder(device_file, "os.O_RDONLY")
    try:
        assert device_readers(link) == [reader.pid]
    finally:
        reader.close()


def test_auto_is_on_where_viewers_cannot_be_counted() -> None:
    assert effective_mode("auto", in_container=False) == "auto"
    assert effective_mode("auto", in_container=True) == "on"
    assert effective_mode("auto", in_container=False, uncounted=True) == "on"
    assert effective_mode("off", in_container=True) == "off"
    with pytest.raises(ConfigError, match="auto, on, off"):
        effective_mode("sometimes", in_container=False)


def test_container_detection(tmp_path: Path) -> None:
    assert not running_in_container(tmp_path)
    (tmp_path / ".dockerenv").touch()
    assert running_in_container(tmp_path)


def test_grace_period_and_modes_on_a_running_sink(tmp_path: Path, device_file: Path) -> None:
    with running_sink(tmp_path, with_segmenter=False, segmenting_mode="auto") as live:
        app = live.app
        app.viewer_watch.stop()   # this test's watch decides, at the times it gives
        watch = ViewerWatch(app, devices=[str(device_file)], mode="auto", in_container=False, grace_s=2.0)
        t0 = time.monotonic()
        assert watch.check(now=t0 + 1.0) is True              # within the grace period after start
        assert watch.check(now=t0 + 5.0) is False             # nobody watched for longer
        wait_until(lambda: app.segmenting is False, 5, "segmenting to stop")
        reader = Holder(device_file, "os.O_RDONLY")
        try:
            assert watch.check(now=t0 + 6.0) is True
            wait_until(lambda: app.segmenting is True, 5, "segmenting to resume")
            assert watch.snapshot()["device_readers"] == [reader.pid]
        finally:
            reader.close()
        assert watch.check(now=t0 + 7.0) is True              # the grace period again
        assert watch.check(now=t0 + 9.0) is False
        watch.set_mode("on")
        assert watch.check(now=t0 + 20.0) is True
        watch.set_mode("off")
        assert watch.check(now=t0 + 21.0) is False


def test_outputs_nobody_can_count_keep_segmenting(tmp_path: Path, device_file: Path) -> None:
    with running_sink(tmp_path, with_segmenter=False) as live:
        live.app.viewer_watch.stop()
        watch = ViewerWatch(live.app, devices=[str(device_file)], outputs=["v4l2", "file"], mode="auto",
                            in_container=False, grace_s=0.0)
        assert watch.check(now=time.monotonic() + 10) is True
        assert watch.snapshot()["uncounted_outputs"] == ["file"]


@pytest.mark.fuse
@pytest.mark.slow
def test_a_viewer_of_the_virtual_camera_resumes_segmenting(tmp_path: Path, fake_v4l2) -> None:
    """The sink writes the (FUSE fake) loopback device; another process opening it is a viewer."""
    with running_sink(tmp_path, with_segmenter=False, segmenting_mode="auto", outputs=["v4l2"],
                      device=str(fake_v4l2.device)) as live:
        watch = live.app.viewer_watch
        watch.in_container = False    # this test machine may be a container; the fake device is here
        watch.grace_s = 0.5
        watch.set_mode("auto")

        def segmenting() -> bool:
            return live.status()["settings"]["segmenting"]

        wait_until(lambda: not segmenting(), 10, "segmenting to stop with nobody watching")
        assert live.status()["viewers"]["device_readers"] == []
        consumer = Holder(fake_v4l2.device, "os.O_RDWR")     # what Chrome and Zoom do
        try:
            wait_until(segmenting, 5, "segmenting to resume for a viewer")
            assert live.status()["viewers"]["device_readers"] == [consumer.pid]
        finally:
            consumer.close()
        wait_until(lambda: not segmenting(), 5, "segmenting to stop once the viewer left")


@pytest.mark.slow
def test_watching_the_preview_resumes_segmenting(tmp_path: Path) -> None:
    import http.client

    with running_sink(tmp_path, with_segmenter=False, segmenting_mode="auto") as live:
        watch = live.app.viewer_watch
        watch.in_container = False
        watch.grace_s = 0.5
        watch.set_mode("auto")
        wait_until(lambda: live.app.segmenting is False, 10, "segmenting to stop with nobody watching")
        host, port = live.url.split("//")[1].rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", "/stream.mjpg")
            response = conn.getresponse()
            response.read(1000)
            wait_until(lambda: live.app.segmenting is True, 5, "segmenting to resume for a preview viewer")
            assert live.app.viewer_watch.snapshot()["preview_viewers"] == 1
        finally:
            conn.close()
        wait_until(lambda: live.app.segmenting is False, 5, "segmenting to stop once the preview closed")
