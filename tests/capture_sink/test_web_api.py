"""The web page's JSON API over real HTTP, against a real SinkApp fed masks by a real segmenter process."""

from __future__ import annotations

import http.client
import json
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from capture_sink.config import ConfigError
from capture_sink.web import WebServer
from test_web_helpers import HEIGHT, WIDTH, LiveSink, http_request, read_mjpeg_frames, running_sink, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> LiveSink:
    with running_sink(tmp_path_factory.mktemp("web-api")) as sink:
        yield sink


@pytest.fixture(autouse=True)
def default_look(live: LiveSink):
    """Every test starts from the same look, whatever the previous one changed."""
    live.change(effect="hologram", background="default", preset="default", paused="off", segmenting_mode="on")
    yield


def hologram_tint(image: np.ndarray) -> float:
    """Mean blue minus red over the centre, where the demo person is: hologram > 0, plain skin < 0."""
    centre = image[HEIGHT // 4: 3 * HEIGHT // 4, WIDTH // 3: 2 * WIDTH // 3].astype(np.float32)
    return float((centre[..., 0] - centre[..., 2]).mean())


def jpeg_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def multipart(field: str, filename: str, payload: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = "holocamtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload(live: LiveSink, payload: bytes, *, filename: str = "bg.jpg", content_type: str = "image/jpeg"):
    body, ctype = multipart("file", filename, payload, content_type)
    return live.request("POST", "/api/backgrounds", data=body, headers={"Content-Type": ctype})


# -- status and settings -------------------------------------------------------------------------

def test_status_reports_live_numbers(live: LiveSink) -> None:
    status = wait_until(lambda: (s := live.status())["stats"]["fps_out"] > 5 and s, 10, "output fps")
    assert status["stats"]["replicas"] == 1
    assert 0 < status["stats"]["latency_ms"] < 1000
    assert status["settings"]["effect"] == "hologram"
    assert {"hologram", "none"} <= set(status["choices"]["effect"])
    assert status["viewers"]["mode"] == "on"


def test_api_index_lists_the_endpoints(live: LiveSink) -> None:
    code, body, _ = live.request("GET", "/api")
    assert code == 200 and "POST /api/settings" in body["endpoints"]


def test_changing_the_effect_changes_output_frames(live: LiveSink) -> None:
    assert hologram_tint(live.snapshot()) > 20
    answer = live.change(effect="none")
    assert answer["settings"]["effect"] == "none" and answer["pending"] is False
    assert live.app.config.effect == "none"
    assert hologram_tint(live.snapshot()) < 0
    live.change(effect="hologram")
    assert hologram_tint(live.snapshot()) > 20


def test_refine_sliders_reach_the_refiner(live: LiveSink) -> None:
    answer = live.change(refine={"threshold": 0.35, "blur": 6})
    assert answer["settings"]["refine"]["threshold"] == 0.35 and answer["settings"]["refine"]["blur"] == 6
    assert live.app.refiner.config.threshold == 0.35 and live.app.refiner.config.blur == 6
    # the next change builds on the last one: threshold stays
    live.change(refine={"feather": 0.3})
    assert (live.app.refiner.config.threshold, live.app.refiner.config.feather) == (0.35, 0.3)


def test_preset_then_refine_override(live: LiveSink) -> None:
    live.change(preset="seed", refine={"blur": 12})
    config = live.app.refiner.config
    assert (config.dilate, config.blur, config.edge) == (10, 12, "off")


def test_bad_change_is_refused_whole(live: LiveSink) -> None:
    code, body, _ = live.request("POST", "/api/settings", {"effect": "none", "background": "/no/such/file.jpg"})
    assert code == 400 and "not an upload or a file in an allowed folder" in body["error"] and "\n" not in body["error"]
    assert live.status()["settings"]["effect"] == "hologram"
    code, body, _ = live.request("POST", "/api/settings", {"effect": "none", "refine": {"threshold": 3}})
    assert code == 400 and "threshold" in body["error"] and "0..1" in body["error"]
    assert live.app.config.effect == "hologram"


@pytest.mark.parametrize("change, words", [
    ({"efect": "none"}, ["unknown setting 'efect'", "valid settings are", "effect"]),
    ({"effect": "sparkles"}, ["unknown effect 'sparkles'", "hologram"]),
    ({"refine": {"thresh": 0.4}}, ["unknown refine setting 'thresh'", "threshold"]),
    ({"refine": {"blur": 2.5}}, ["whole number"]),
    ({"paused": "maybe"}, ["choose one of off, passthrough, still"]),
    ({"segmenting_mode": "sometimes"}, ["auto, on, off"]),
    ([], ["JSON object"]),
])
def test_bad_values_get_one_line_naming_the_fix(live: LiveSink, change, words) -> None:
    code, body, _ = live.request("POST", "/api/settings", change)
    assert code == 400
    assert set(body) == {"error"} and "\n" not in body["error"]
    for word in words:
        assert word in body["error"]


def test_json_is_required_for_changes(live: LiveSink) -> None:
    code, body, _ = live.request("POST", "/api/settings", data=b"effect=none",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 415 and "application/json" in body["error"]
    code, body, _ = live.request("POST", "/api/settings", data=b"{not json", headers={"Content-Type": "application/json"})
    assert code == 400 and "not valid JSON" in body["error"]


def test_unknown_path_and_method(live: LiveSink) -> None:
    code, body, _ = live.request("GET", "/api/nothing")
    assert code == 404 and "GET /api" in body["error"]
    code, body, _ = live.request("DELETE", "/api/settings")
    assert code == 405


# -- pause ---------------------------------------------------------------------------------------------

def green_screen_share(image: np.ndarray) -> float:
    """Share of corner pixels that are green-screen green."""
    corner = image[:40, :40].astype(np.int16)
    return float(((corner[..., 1] > 200) & (corner[..., 0] < 60) & (corner[..., 2] < 60)).mean())


def test_pause_still_repeats_one_frame_and_passthrough_shows_the_camera(live: LiveSink) -> None:
    live.change(background="green")
    assert green_screen_share(live.snapshot()) > 0.9
    assert live.status()["output"] == {"shown": "composited", "reason": ""}
    live.change(paused="still")
    assert live.status()["output"]["shown"] == "still"
    first = live.snapshot()
    time.sleep(0.4)   # the demo person moves all the time
    assert np.array_equal(first, live.snapshot())
    live.change(paused="passthrough")
    assert live.status()["output"]["shown"] == "passthrough"      # the page says the camera goes out
    camera = live.snapshot()
    assert green_screen_share(camera) < 0.05     # the real room, not the green screen
    assert hologram_tint(camera) < 0             # no effect
    live.change(paused="off")
    moving = live.snapshot()
    assert green_screen_share(moving) > 0.9
    time.sleep(0.3)
    assert not np.array_equal(moving, live.snapshot())


# -- uploads -------------------------------------------------------------------------------------------

def test_upload_becomes_the_background(live: LiveSink) -> None:
    picture = np.full((240, 320, 3), (255, 0, 255), np.uint8)   # magenta: easy to find in the output
    code, body, _ = upload(live, jpeg_bytes(picture))
    assert code == 200, body
    path = Path(body["path"])
    assert path.parent == Path(live.app.config.upload_dir).resolve() and path.suffix == ".jpg"
    assert body["settings"]["background"] == str(path)
    corner = live.snapshot()[:30, :30].reshape(-1, 3).mean(axis=0)
    assert corner[0] > 200 and corner[1] < 60 and corner[2] > 200, corner
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert str(path) in live.status()["choices"]["uploads"]


def test_upload_of_a_real_photo_as_raw_body(live: LiveSink) -> None:
    coffee = cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", coffee)
    code, body, _ = live.request("POST", "/api/backgrounds", data=png.tobytes(), headers={"Content-Type": "image/png"})
    assert code == 200, body
    assert Path(body["path"]).suffix == ".png"
    stored = cv2.imread(body["path"], cv2.IMREAD_COLOR)
    assert np.array_equal(stored, coffee)


@pytest.mark.parametrize("payload, words", [
    (b"hello, I am not a picture", ["not a JPEG or PNG"]),
    (b"", ["empty"]),
])
def test_upload_of_something_else_is_refused(live: LiveSink, payload: bytes, words) -> None:
    before = sorted(Path(live.app.config.upload_dir).glob("*"))
    code, body, _ = upload(live, payload, filename="notes.txt", content_type="text/plain")
    assert code == 400 and set(body) == {"error"} and "\n" not in body["error"]
    for word in words:
        assert word in body["error"]
    assert sorted(Path(live.app.config.upload_dir).glob("*")) == before


def test_upload_of_a_truncated_jpeg_is_refused(live: LiveSink) -> None:
    photo = jpeg_bytes(cv2.cvtColor(skdata.chelsea(), cv2.COLOR_RGB2BGR))
    code, body, _ = upload(live, photo[: len(photo) // 3])
    assert code == 400 and "does not decode" in body["error"]
    assert live.status()["settings"]["background"] == "default"


def test_upload_claiming_a_huge_image_is_refused_before_decoding(live: LiveSink) -> None:
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
           + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    code, body, _ = upload(live, png, filename="bomb.png", content_type="image/png")
    assert code == 400 and "60000x60000" in body["error"] and "8192" in body["error"]


def test_upload_too_large_is_refused_before_the_body_is_sent(live: LiveSink) -> None:
    host, port = live.url.split("//")[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("POST", "/api/backgrounds")
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", str(40 * 1024 * 1024))
        conn.putheader("Expect", "100-continue")
        conn.endheaders()
        response = conn.getresponse()   # answered at once: no body was sent
        assert response.status == 413
        assert "MiB" in json.loads(response.read())["error"]
    finally:
        conn.close()


def test_upload_without_a_file_field(live: LiveSink) -> None:
    body, ctype = multipart("picture", "bg.jpg", b"\xff\xd8", "image/jpeg")
    code, answer, _ = live.request("POST", "/api/backgrounds", data=body, headers={"Content-Type": ctype})
    assert code == 400 and "'file'" in answer["error"]


# -- the stream -----------------------------------------------------------------------------------------

def test_mjpeg_stream_updates_and_counts_as_a_viewer(live: LiveSink) -> None:
    frames = read_mjpeg_frames(live.url, 6)
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])   # the picture moves
    # the viewer count drops back once the stream is closed
    wait_until(lambda: live.status()["stats"]["preview_viewers"] == 0, 5, "the stream to be counted out")


def test_open_stream_is_counted(live: LiveSink) -> None:
    host, port = live.url.split("//")[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        response.read(100)
        assert live.status()["stats"]["preview_viewers"] == 1
        assert live.app.web.preview_viewers() == 1
    finally:
        conn.close()
    wait_until(lambda: live.app.web.preview_viewers() == 0, 5, "the closed stream to be counted out")


def test_segmenting_mode_via_api(live: LiveSink) -> None:
    live.change(segmenting_mode="off")
    wait_until(lambda: live.status()["settings"]["segmenting"] is False, 5, "segmenting to stop")
    live.change(segmenting=True)
    wait_until(lambda: live.status()["settings"]["segmenting"] is True, 5, "segmenting to resume")
    assert live.status()["settings"]["segmenting_mode"] == "on"


# -- who may use it -------------------------------------------------------------------------------------

def test_other_sites_cannot_change_settings(live: LiveSink) -> None:
    code, body, _ = live.request("POST", "/api/settings", {"effect": "none"}, headers={"Origin": "http://evil.example"})
    assert code == 403 and "evil.example" in body["error"]
    assert live.app.config.effect == "hologram"
    own = live.url.rstrip("/")
    assert live.request("POST", "/api/settings", {"effect": "none"}, headers={"Origin": own})[0] == 200


def test_foreign_host_names_are_refused_without_a_token(live: LiveSink) -> None:
    """DNS rebinding: a site pointing its own name at 127.0.0.1 must not read the webcam."""
    code, body, _ = live.request("GET", "/api/snapshot.jpg", headers={"Host": "attacker.example:80"})
    assert code == 403 and "not this machine" in body["error"]
    assert live.request("GET", "/api/status", headers={"Host": "localhost"})[0] == 200


def test_token_is_required_when_set(live: LiveSink, tmp_path: Path) -> None:
    token = "s3cret-token-for-tests-only"
    server = WebServer(live.app, port=0, token=token, upload_dir=tmp_path).start()
    try:
        code, body, _ = http_request(server.url, "GET", "/api/status")
        assert code == 401 and "token" in body["error"]
        code, body, _ = http_request(server.url, "GET", "/api/status", headers={"Authorization": "Bearer wrong-token-123456"})
        assert code == 401
        code, body, _ = http_request(server.url, "GET", "/api/status", headers={"Authorization": f"Bearer {token}"})
        assert code == 200 and body["settings"]["effect"] == "hologram"
        # a browser opens /?token=... once: the token moves into a cookie and out of the address bar
        host, port = server.url.split("//")[1].rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", f"/?token={token}")
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 303 and response.getheader("Location") == "/"
        cookie = response.getheader("Set-Cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        code, _, _ = http_request(server.url, "GET", "/api/settings", headers={"Cookie": cookie.split(";")[0]})
        assert code == 200
    finally:
        server.stop()


def test_binding_beyond_loopback_without_a_token_is_refused(live: LiveSink, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without a token"):
        WebServer(live.app, host="0.0.0.0", port=0, upload_dir=tmp_path)


def test_port_in_use_is_one_clear_error(live: LiveSink, tmp_path: Path) -> None:
    taken = int(live.url.rstrip("/").rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match="another --http-port"):
        WebServer(live.app, port=taken, upload_dir=tmp_path).start()


def test_page_and_its_files_are_served(live: LiveSink) -> None:
    code, page, headers = live.request("GET", "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="/stream.mjpg"' in page and b"/static/page.js" in page
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    code, script, headers = live.request("GET", "/static/page.js")
    assert code == 200 and b"/api/settings" in script


def test_a_viewer_that_stops_reading_is_dropped(live: LiveSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stalled client (a laptop gone to sleep) must not count as a viewer for ever."""
    import socket

    from capture_sink.web import api

    monkeypatch.setattr(api, "SEND_TIMEOUT_S", 1.0)
    host, port = live.url.split("//")[1].rstrip("/").rsplit(":", 1)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # fills up quickly
    try:
        stalled.connect((host, int(port)))
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_until(lambda: live.app.web.preview_viewers() == 1, 5, "the stalled client to be counted")
        frames = read_mjpeg_frames(live.url, 3)                     # others are served meanwhile
        assert len(frames) == 3
        wait_until(lambda: live.app.web.preview_viewers() == 0, 60, "the stalled client to be dropped")
    finally:
        stalled.close()
