"""The web token on real sink processes: made on the first start, printed once as a URL, kept 0600,
the same after a restart, a new one after the file is deleted; off only when asked, with a warning.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from test_web_helpers import free_port, http_request, wait_until

REPO = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"web page at (http://127\.0\.0\.1:\d+/)\?token=([A-Za-z0-9_-]+)")


class Sink:
    """`python -m capture_sink run` (demo source, null output, no segmenter) with its log in a file."""

    def __init__(self, tmp: Path, xdg: Path, *args: str) -> None:
        self.log_path = tmp / f"sink-{time.monotonic_ns()}.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "XDG_CONFIG_HOME": str(xdg)}
        env.pop("HOLOCAM_HTTP_TOKEN", None)
        cmd = [sys.executable, "-m", "capture_sink", "run", "--source", "demo", "--width", "320", "--height", "240",
               "--fps", "10", "--output", "null", "--bind", f"tcp://127.0.0.1:{free_port()}", *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str) -> str:
        wait_until(lambda: text in self.log() or self.proc.poll() is not None, 60, repr(text))
        assert text in self.log(), self.log()[-3000:]
        return self.log()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[list[Sink]]:
    started: list[Sink] = []
    try:
        yield started
    finally:
        for sink in started:
            if sink.proc.poll() is None:
                sink.proc.kill()
                sink.proc.wait(10)


def start(sinks: list[Sink], tmp: Path, xdg: Path, *args: str) -> Sink:
    sink = Sink(tmp, xdg, *args)
    sinks.append(sink)
    return sink


def test_a_token_is_made_printed_once_kept_private_and_kept_across_restarts(tmp_path, sinks):
    xdg = tmp_path / "config"
    port = free_port()
    first = start(sinks, tmp_path, xdg, "--http-port", str(port))
    log = first.wait_for("?token=")
    url, token = URL_LINE.search(log).groups()
    assert log.count(token) == 1, "the token is printed once"
    stored = xdg / "holocam" / "http_token"
    assert stored.read_text().strip() == token
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700

    for path in ("/api/status", "/api/snapshot.jpg", "/stream.mjpg", "/"):
        code, body, _ = http_request(url, "GET", path)
        assert code == 401 and "?token=" in body["error"], path          # localhost too
    code, body, _ = http_request(url, "GET", "/api/status", headers={"Host": "rebound.example"})
    assert code == 403 and "not this machine" in body["error"]          # even before the token
    code, _, _ = http_request(url, "GET", "/api/status",
                              headers={"Host": "rebound.example", "Authorization": f"Bearer {token}"})
    assert code == 403
    cookie = _visit(url, token)
    code, body, _ = http_request(url, "GET", "/api/status", headers={"Cookie": cookie})
    assert code == 200 and body["output"]["shown"] == "waiting"          # no segmenter: the page says so
    first.stop()

    second = start(sinks, tmp_path, xdg, "--http-port", str(port))
    log = second.wait_for("?token=")
    assert URL_LINE.search(log).group(2) == token, "a restart keeps the token"
    assert "made a new web token" not in log
    assert http_request(url, "GET", "/api/settings", headers={"Cookie": cookie})[0] == 200   # open tabs keep working
    second.stop()

    stored.unlink()                                                      # rotate: delete and restart
    third = start(sinks, tmp_path, xdg, "--http-port", str(port))
    new_token = URL_LINE.search(third.wait_for("?token=")).group(2)
    assert new_token != token
    assert http_request(url, "GET", "/api/settings", headers={"Cookie": cookie})[0] == 401
    third.stop()


def _visit(url: str, token: str) -> str:
    """Open /?token= as a browser does the first time; returns the cookie it is given."""
    import http.client
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", f"/?token={token}")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 303 and response.getheader("Location") == "/"
    cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";")[0]


def test_a_token_file_readable_by_others_is_closed_before_use(tmp_path, sinks):
    stored = tmp_path / "config" / "holocam" / "http_token"
    stored.parent.mkdir(parents=True)
    stored.write_text("a-token-someone-wrote-by-hand-0123456789\n")
    stored.chmod(0o644)
    sink = start(sinks, tmp_path, tmp_path / "config", "--http-port", "0")
    log = sink.wait_for("?token=")
    assert "a-token-someone-wrote-by-hand-0123456789" in log and "was readable by other users" in log
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    sink.stop()


def test_no_http_auth_is_explicit_and_warned(tmp_path, sinks):
    port = free_port()
    sink = start(sinks, tmp_path, tmp_path / "config", "--http-port", str(port), "--no-http-auth")
    log = sink.wait_for("web page at")
    assert "W: --no-http-auth: the web page has no token" in log and "?token=" not in log
    assert http_request(f"http://127.0.0.1:{port}/", "GET", "/api/settings")[0] == 200
    assert not (tmp_path / "config" / "holocam" / "http_token").exists()
    sink.stop()


def test_no_http_means_no_web_server_at_all(tmp_path, sinks):
    port = free_port()
    sink = start(sinks, tmp_path, tmp_path / "config", "--http-port", str(port), "--no-http")
    sink.wait_for("no valid mask")               # the frame loop runs
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    sink.stop()


def test_the_printed_url_is_the_address_the_browser_opens(tmp_path, sinks, monkeypatch):
    # In a container the page listens on 0.0.0.0:8080 and the host publishes another port.
    monkeypatch.setenv("HOLOCAM_HTTP_PUBLIC_URL", "http://127.0.0.1:18080")
    sink = start(sinks, tmp_path, tmp_path / "config", "--http-port", str(free_port()))
    url, token = URL_LINE.search(sink.wait_for("?token=")).groups()
    assert url == "http://127.0.0.1:18080/" and token
    monkeypatch.setenv("HOLOCAM_HTTP_PUBLIC_URL", "127.0.0.1:18080")
    bad = start(sinks, tmp_path, tmp_path / "config2")
    assert bad.proc.wait(60) == 2
    assert "is not a URL" in bad.log() and "Traceback" not in bad.log()
