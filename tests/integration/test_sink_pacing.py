"""Pacing: a stalled segmenter must not slow the sink's output; masks come back when it resumes.

While it is stalled, frames go on without a mask once the newest is older than the max mask age
(fail closed: tests/integration/test_fail_closed.py checks what those frames show).

A real sink process (demo source at 30 fps, `wait` pacing) and a real segmenter process; the
segmenter is frozen with SIGSTOP mid-stream. Numbers come from the sink's JSON API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from helpers_transport import free_port, wait_until

pytestmark = pytest.mark.slow
FPS = 30


def _status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=3) as response:
        return json.loads(response.read())["stats"]


def _counts_over(port: int, seconds: float) -> tuple[dict, dict, float]:
    before, start = _status(port), time.monotonic()
    time.sleep(seconds)
    return before, _status(port), time.monotonic() - start


def test_stalled_segmenter_keeps_output_rate_and_masks_resume(segmenter_process, tmp_path):
    endpoint, http_port = f"tcp://127.0.0.1:{free_port()}", free_port()
    replica = segmenter_process.start(connect=[endpoint], replica_id="pacer")
    wait_until(lambda: "serving" in replica.log(), 60, "the segmenter to load")
    log = open(tmp_path / "sink.log", "wb")
    sink = subprocess.Popen([sys.executable, "-m", "capture_sink", "run", "--bind", endpoint, "--source", "demo",
                             "--width", "640", "--height", "360", "--fps", str(FPS), "--output", "null",
                             "--pacing", "wait", "--segmenting", "on", "--http-port", str(http_port),
                                 "--no-http-auth"],   # this test reads /api/status; tokens: test_web_token.py
                            stdout=log, stderr=log)
    try:
        wait_until(lambda: _try(lambda: _status(http_port)["counters"]["own_mask"] > 30), 60, "masks at the sink")

        before, after, span = _counts_over(http_port, 2.0)
        healthy_rate = (after["counters"]["frames"] - before["counters"]["frames"]) / span

        replica.signal(signal.SIGSTOP)
        time.sleep(0.8)                    # past the max mask age (500 ms): the newest mask is too old now
        before, after, span = _counts_over(http_port, 3.0)
        stalled_rate = (after["counters"]["frames"] - before["counters"]["frames"]) / span
        new_own = after["counters"]["own_mask"] - before["counters"]["own_mask"]
        reused = after["counters"]["older_mask"] - before["counters"]["older_mask"]
        hidden = after["counters"]["no_mask"] - before["counters"]["no_mask"]
        assert new_own == 0, "a frozen segmenter cannot have answered"
        assert reused == 0, "a mask older than the max age is never used (fail closed)"
        assert hidden > 0.8 * FPS * span, "frames go on, showing the background alone"
        assert stalled_rate >= 0.85 * min(healthy_rate, FPS), (healthy_rate, stalled_rate)

        replica.signal(signal.SIGCONT)
        wait_until(lambda: _status(http_port)["counters"]["own_mask"] > after["counters"]["own_mask"] + 30, 10,
                   "masks to resume after the stall")
    finally:
        sink.terminate()
        try:
            assert sink.wait(timeout=20) == 0, (tmp_path / "sink.log").read_text()[-3000:]
        finally:
            log.close()


def _try(check) -> bool:
    try:
        return check()
    except OSError:
        return False
