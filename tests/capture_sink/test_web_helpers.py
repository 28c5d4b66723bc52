"""Helpers for the live-control tests: a real SinkApp running in this process, a real segmenter
process beside it, and a small HTTP client (urllib, real sockets). Imported by test_web_api.py,
test_reload.py and test_viewers.py; it holds no tests itself.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

from bench.harness import free_port
from bench.harness import wait_until as harness_wait_until
from capture_sink.app import SinkApp
from capture_sink.config import SinkConfig, validate

START_TIMEOUT_S = 60.0
WIDTH, HEIGHT, FPS = 640, 360, 15.0


def weights_missing_reason() -> str | None:
    try:
        from segmenter.model import DEFAULT_MODEL
        from segmenter.weights import WeightsError, model_weights
    except ImportError as exc:
        return f"segmenter package not importable ({exc})"
    try:
        model_weights(DEFAULT_MODEL)
    except WeightsError as exc:
        return str(exc)
    return None


def start_segmenter(endpoint: str, *, mode: str = "connect") -> subprocess.Popen:
    """A real segmenter replica process (`python -m segmenter serve`)."""
    reason = weights_missing_reason()
    if reason:
        pytest.skip(f"no segmenter weights: {reason}")
    return subprocess.Popen([sys.executable, "-m", "segmenter", "serve", f"--{mode}", endpoint, "--threads", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stderr is not None:
        proc.stderr.close()


@dataclass
class LiveSink:
    """A started SinkApp whose frame loop runs on a thread, and its web address."""

    app: SinkApp
    url: str
    segmenter: subprocess.Popen | None = None
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                data: bytes | None = None, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed JSON or raw bytes, headers) of one real HTTP request."""
        return http_request(self.url, method, path, body, headers=headers, data=data, timeout=timeout)

    def status(self) -> dict:
        code, body, _ = self.request("GET", "/api/status")
        assert code == 200, body
        return body

    def change(self, **settings: Any) -> dict:
        code, body, _ = self.request("POST", "/api/settings", settings)
        assert code == 200, body
        assert body["pending"] is False, f"the frame loop did not apply {settings} in time"
        return body

    def snapshot(self) -> np.ndarray:
        code, body, headers = self.request("GET", "/api/snapshot.jpg")
        assert code == 200 and headers["Content-Type"] == "image/jpeg", body
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
        return image


def http_request(base: str, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                 data: bytes | None = None, timeout: float = 10.0) -> tuple[int, Any, dict[str, str]]:
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
        exc.close()
    if got.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), got
    return status, raw, got


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.05) -> Any:
    """bench.harness.wait_until at a gentler poll: each try here is an HTTP request."""
    return harness_wait_until(predicate, timeout_s, what, poll_s=interval_s)


@contextlib.contextmanager
def running_sink(tmp_path: Path, *, with_segmenter: bool = True, **overrides: Any) -> Iterator[LiveSink]:
    """Start a SinkApp (demo source, null output, web on a free port) and, by default, a segmenter.

    Yields once the web page answers and, with a segmenter, once masks are being applied.
    """
    bind = f"tcp://127.0.0.1:{free_port()}"
    values = dict(source="demo", width=WIDTH, height=HEIGHT, fps=FPS, outputs=["null"], bind=[bind],
                  http_port=0, upload_dir=str(tmp_path / "uploads"), segmenting_mode="on",
                  http_auth=False)   # the explicit opt-out: token tests ask for the default

    values.update(overrides)
    config = validate(SinkConfig(**values))
    segmenter = start_segmenter(bind) if with_segmenter else None
    app = SinkApp(config)
    live = LiveSink(app=app, url="", segmenter=segmenter)
    try:
        app.start()
        live.url = app.web.url if app.web is not None else ""

        def loop() -> None:
            try:
                app.run()
            except BaseException as exc:  # reported by the test's teardown
                live.errors.append(exc)

        live.thread = threading.Thread(target=loop, name="test-sink-loop", daemon=True)
        live.thread.start()
        if segmenter is not None:
            def masks_applied() -> bool:
                if segmenter.poll() is not None:
                    raise AssertionError(f"segmenter exited: {segmenter.stderr.read().decode()[-2000:]}")
                return app.stats.counters.get("own_mask", 0) + app.stats.counters.get("older_mask", 0) > 3
            wait_until(masks_applied, START_TIMEOUT_S, "the first masks from the segmenter")
        yield live
    finally:
        app.stop()
        if live.thread is not None:
            live.thread.join(10)
        app.close()
        if segmenter is not None:
            stop_process(segmenter)
    assert not live.errors, f"the frame loop failed: {live.errors!r}"


def read_mjpeg_frames(url: str, count: int, *, timeout: float = 10.0) -> list[np.ndarray]:
    """Open /stream.mjpg and decode `count` frames from the multipart stream."""
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        return [read_part(response) for _ in range(count)]
    finally:
        conn.close()


def read_part(response: http.client.HTTPResponse) -> np.ndarray:
    """One JPEG part of a multipart MJPEG stream, decoded."""
    line = response.readline()
    while line in (b"\r\n", b"\n"):
        line = response.readline()
    assert line.startswith(b"--"), line
    length = None
    while True:
        header = response.readline().strip()
        if not header:
            break
        name, _, value = header.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    assert length is not None
    image = cv2.imdecode(np.frombuffer(response.read(length), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image
