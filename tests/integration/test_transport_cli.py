"""`python -m segmenter serve`: user errors are one line naming the fix (exit 2); SIGTERM exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from helpers_transport import REPO, wait_until


def serve(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "segmenter", "serve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout_s, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("args, fix", [
    (["--connect", "tcp://192.0.2.10:5555"], "--curve-dir"),
    (["--bind", "tcp://*:5556"], "--insecure"),
    (["--connect", "sink:5555"], "tcp://HOST:PORT"),
    (["--curve-dir", "/nonexistent/keys"], "make keys"),
    (["--capacity", "0"], "--capacity"),
    (["--model", "icnet-resnet18"], "weights"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, fix, tmp_path):
    result = serve(*args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and fix in errors[0], result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_one_line_error(segmenter_process):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--bind", f"tcp://127.0.0.1:{port}")
    assert result.returncode == 2 and "in use" in result.stderr and "Traceback" not in result.stderr


def test_insecure_lan_link_warns_and_sigterm_exits_0(segmenter_process):
    process = segmenter_process.start(connect=["tcp://192.0.2.10:5555"], extra=["--insecure"])
    wait_until(lambda: "serving" in process.log() or not process.alive(), 60.0, "the segmenter to start")
    assert "PLAIN TEXT on tcp://192.0.2.10:5555" in process.log()
    process.signal(signal.SIGTERM)
    assert process.popen.wait(10) == 0
