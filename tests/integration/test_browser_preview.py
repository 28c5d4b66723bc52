"""The web page in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`,
driven with selenium) loads the page of a sink started from the command line with its own
segmenter, sees the preview move, changes the effect with the page's control, and sees the
output frames change. Skipped with the reason when Chromium, its driver or selenium is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from bench.harness import free_port, wait_until

CHROMIUM = os.environ.get("HOLOCAM_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HOLOCAM_CHROMEDRIVER", "/usr/bin/chromedriver")
START_TIMEOUT_S = 90.0

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return "no Chromium: apt-get install -y chromium chromium-driver"
    if not (os.path.exists(CHROMEDRIVER) or shutil.which("chromedriver")):
        return "no chromedriver: apt-get install -y chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install selenium==4.51.0"
    return None


def _status(url: str, token: str) -> dict | None:
    request = urllib.request.Request(url + "api/status", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`python -m capture_sink run --with-segmenter --source demo --output null` on free ports;
    yields (page URL, the token the sink made and logged)."""
    try:
        from segmenter.model import DEFAULT_MODEL
        from segmenter.weights import WeightsError, model_weights
        model_weights(DEFAULT_MODEL)
    except (ImportError, WeightsError) as exc:
        pytest.skip(f"no segmenter weights here ({exc}): run `make weights`")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOCAM_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    log = open(tmp_path / "sink.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "capture_sink", "run", "--with-segmenter", "--source", "demo", "--output", "null",
         "--width", "640", "--height", "360", "--fps", "15", "--segmenting", "on",
         "--bind", f"tcp://127.0.0.1:{free_port()}", "--http-port", str(port),
         "--upload-dir", str(tmp_path / "uploads")],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    token = ""
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            log.seek(0)
            found = re.search(r"web page at \S+\?token=([A-Za-z0-9_-]+)", log.read())
            token = found.group(1) if found else ""
            status = _status(url, token) if token else None
            if status and status["stats"].get("replicas") == 1 and status["stats"]["counters"]["own_mask"] > 3:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"the sink did not start with a segmenter:\n{log.read()[-3000:]}")
            time.sleep(0.2)
        yield url, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture
def browser(tmp_path: Path):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,800", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


# Samples the <img> showing the MJPEG stream: a small grey-level thumbnail (to see motion) and the
# mean blue-minus-red over the centre, where the demo person is (hologram > 0, plain skin < 0).
SAMPLE_JS = """
const img = document.getElementById('preview');
if (!img.complete || img.naturalWidth === 0) return null;
const canvas = document.createElement('canvas');
canvas.width = 64; canvas.height = 36;
const ctx = canvas.getContext('2d');
ctx.drawImage(img, 0, 0, 64, 36);
const px = ctx.getImageData(0, 0, 64, 36).data;
const grey = [];
let tint = 0, n = 0;
for (let y = 0; y < 36; y++) for (let x = 0; x < 64; x++) {
  const i = (y * 64 + x) * 4;
  grey.push(px[i] + px[i + 1] + px[i + 2]);
  if (y >= 9 && y < 27 && x >= 21 && x < 43) { tint += px[i + 2] - px[i]; n++; }
}
return {grey: grey, tint: tint / n, width: img.naturalWidth};
"""


def _wait(predicate, timeout_s: float, what: str):
    """bench.harness.wait_until at a browser's pace: each try runs a script in the page."""
    return wait_until(predicate, timeout_s, what, poll_s=0.1)


def test_page_shows_a_live_preview_and_changes_the_effect(sink: tuple[str, str], browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, token = sink
    browser.get(url)                                   # without the token: nothing but the error
    assert "needs its token" in browser.page_source
    browser.get(f"{url}?token={token}")                # the URL the log printed, opened once
    assert browser.current_url == url                  # the token moved into a cookie
    browser.refresh()                                  # ... which a reload keeps using
    first = _wait(lambda: browser.execute_script(SAMPLE_JS), 20, "the first preview frame")
    assert first["width"] == 640
    # the preview updates: the demo person moves, so later frames differ
    moved = _wait(lambda: (s := browser.execute_script(SAMPLE_JS)) and s["grey"] != first["grey"] and s,
                  10, "the preview to update")
    assert moved["tint"] > 20, f"hologram expected first, blue-minus-red was {moved['tint']:.1f}"
    # the numbers come from /api/status
    # The count, and where the replicas compute (issue 14: "cpu" here, e.g. "cuda:0 fp16" on a GPU).
    _wait(lambda: browser.find_element(By.ID, "replicas").text == "1 (cpu)", 10,
          "the replica count and device on the page")
    assert float(browser.find_element(By.ID, "fps").text) > 0
    # change the effect with the page's own control
    Select(browser.find_element(By.ID, "effect")).select_by_value("none")
    _wait(lambda: browser.execute_script("return document.body.dataset.effect") == "none", 10,
          "the page to confirm the new effect")
    after = _wait(lambda: (s := browser.execute_script(SAMPLE_JS)) and s["tint"] < 0 and s, 10,
                  "output frames without the hologram tint")
    assert after["grey"] != first["grey"]
    assert browser.find_element(By.ID, "error").text == ""
    # the sink really changed (not only the page)
    assert _status(url, token)["settings"]["effect"] == "none"
    assert browser.find_element(By.ID, "output-state").is_displayed() is False   # the person is composited
