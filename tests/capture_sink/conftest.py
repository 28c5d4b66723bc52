"""Fixtures for the sink's tests: a fake v4l2loopback device served over FUSE by another process.

The fake (tests/fakes/fake_v4l2loopback.py) runs in a subprocess: a writer that holds the GIL
in open() (pyvirtualcam) would deadlock a server in the test process. Every mount is taken down
after its test, by `umount` under `timeout -s KILL`, then by aborting the FUSE connection if the
server hangs, so a broken fake cannot hang the suite.

Skipped with the reason where FUSE cannot work (no /dev/fuse, no libfuse2, no fusepy, no mount
rights); set HOLOCAM_REQUIRE_FUSE=1 to make that a failure instead (CI runs as root with FUSE).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

FAKE_SERVER = Path(__file__).resolve().parents[1] / "fakes" / "fake_v4l2loopback.py"
MOUNT_TIMEOUT_S = 10.0
UNMOUNT_TIMEOUT_S = 5


class FakeV4L2(NamedTuple):
    """A mounted fake device: ``device`` to open, ``record`` holding every byte written to it."""

    device: Path
    record: Path

    @property
    def log(self) -> Path:
        return Path(str(self.record) + ".log")

    def frames(self, frame_size: int) -> list[bytes]:
        """The recorded bytes cut into frames of ``frame_size`` (a trailing partial frame is an error)."""
        data = self.record.read_bytes()
        assert len(data) % frame_size == 0, f"{len(data)} recorded bytes are not whole {frame_size}-byte frames"
        return [data[i : i + frame_size] for i in range(0, len(data), frame_size)]

    def all_closed(self, timeout: float = 2.0) -> bool:
        """Whether every open() was released; waits, since FUSE sends RELEASE after close() returns."""
        deadline = time.monotonic() + timeout
        while len(self.events("open")) != len(self.events("release")):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def events(self, op: str | None = None) -> list[dict[str, Any]]:
        """The fake's log: one dict per open, ioctl, first write and release."""
        events = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [e for e in events if op is None or e["op"] == op or e.get("name") == op]


def fuse_unavailable_reason() -> str | None:
    """Why the FUSE fake cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (in Docker: --device /dev/fuse --cap-add SYS_ADMIN)"
    if importlib.util.find_spec("fuse") is None:
        return "fusepy is not installed: pip install fusepy==3.0.1"
    if ctypes.util.find_library("fuse") is None:
        return "libfuse2 is missing: apt-get install libfuse2"
    if os.geteuid() != 0 and shutil.which("fusermount") is None:
        return "not root and no fusermount to mount as a user: apt-get install fuse"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("HOLOCAM_REQUIRE_FUSE") == "1":
        pytest.fail(f"HOLOCAM_REQUIRE_FUSE=1 but the fake v4l2 device cannot run: {reason}")
    pytest.skip(f"fake v4l2 device over FUSE unavailable: {reason}")


def _mount_entry(mountpoint: Path) -> list[str] | None:
    # /proc/self/mountinfo is read without touching the mount (a stat of a hung FUSE mount hangs).
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(mountpoint):
                return fields
    return None


def _unmount(mountpoint: Path) -> None:
    entry = _mount_entry(mountpoint)
    if entry is None:
        return
    command = ["umount", str(mountpoint)] if os.geteuid() == 0 else ["fusermount", "-u", str(mountpoint)]
    done = subprocess.run(["timeout", "-s", "KILL", str(UNMOUNT_TIMEOUT_S), *command], capture_output=True)
    if done.returncode == 0 and _mount_entry(mountpoint) is None:
        return
    # The server hangs or the mount is busy: abort the connection, then detach lazily.
    minor = entry[2].split(":")[1]
    with contextlib.suppress(OSError):
        Path(f"/sys/fs/fuse/connections/{minor}/abort").write_text("1")
    lazy = ["umount", "-l", str(mountpoint)] if os.geteuid() == 0 else ["fusermount", "-uz", str(mountpoint)]
    subprocess.run(["timeout", "-s", "KILL", str(UNMOUNT_TIMEOUT_S), *lazy], capture_output=True)


@contextlib.contextmanager
def serve_fake_v4l2(folder: Path, *server_args: str) -> Iterator[FakeV4L2]:
    """Mount the fake device under ``folder`` for the duration of the block."""
    reason = fuse_unavailable_reason()
    if reason:
        _skip_or_fail(reason)
    folder = folder.resolve()  # mountinfo lists the real path
    mountpoint, record = folder / "mnt", folder / "record.bin"
    mountpoint.mkdir()
    stderr_path = folder / "server.stderr"
    with open(stderr_path, "wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), str(mountpoint), str(record), *server_args],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
        )
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while _mount_entry(mountpoint) is None:
            if server.poll() is not None:
                output = stderr_path.read_text(errors="replace").strip()
                if "Traceback" in output:
                    pytest.fail(f"fake v4l2 server crashed:\n{output}")
                _skip_or_fail(f"mounting failed: {output.splitlines()[-1] if output else server.returncode}")
            if time.monotonic() > deadline:
                pytest.fail(f"fake v4l2 server did not mount within {MOUNT_TIMEOUT_S} s")
            time.sleep(0.01)
        yield FakeV4L2(device=mountpoint / "video20", record=record)
    finally:
        _unmount(mountpoint)
        try:
            server.wait(UNMOUNT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(UNMOUNT_TIMEOUT_S)


@pytest.fixture
def fake_v4l2(tmp_path: Path) -> Iterator[FakeV4L2]:
    """A fresh fake v4l2loopback device (exclusive_caps=1, no format held): (device, record)."""
    with serve_fake_v4l2(tmp_path) as fake:
        yield fake


@pytest.fixture
def fake_v4l2_with(tmp_path: Path) -> Iterator[Callable[..., FakeV4L2]]:
    """Start a fake device with server options, e.g. ``fake_v4l2_with("--lock-format", "640x480:YUYV")``."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(*server_args: str) -> FakeV4L2:
            nonlocal count
            count += 1
            folder = tmp_path / f"fake{count}"
            folder.mkdir()
            return stack.enter_context(serve_fake_v4l2(folder, *server_args))

        yield start


@pytest.fixture
def loopback_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A /sys with a loaded v4l2loopback of the given release and options, seen by capture_sink.

    ``loopback_sysfs(version="0.12.7", exclusive_caps="Y", video_nr="20")`` writes
    module/v4l2loopback/{version,parameters/*} under a temporary root and points
    capture_sink.outputs.v4l2_module.SYS_ROOT there; returns that root.
    """
    from capture_sink.outputs import v4l2_module

    root = tmp_path / "sys"

    def make(version: str | None = "0.15.4", **params: str) -> Path:
        module = root / "module" / "v4l2loopback"
        (module / "parameters").mkdir(parents=True, exist_ok=True)
        if version is not None:
            (module / "version").write_text(version + "\n")
        for name, value in {"exclusive_caps": "Y", "video_nr": "20", **params}.items():
            (module / "parameters" / name).write_text(value + "\n")
        monkeypatch.setattr(v4l2_module, "SYS_ROOT", root)
        return root

    return make
