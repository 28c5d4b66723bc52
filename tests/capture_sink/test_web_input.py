"""What a web client may send, over real HTTP to a real SinkApp: background files only from uploads
and allowed folders (one answer for missing and not allowed), and bodies over their limits refused
with 413 while they stream in, leaving nothing behind in the upload folder.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from capture_sink.web import WebServer
from capture_sink.web.api import MAX_JSON_BYTES
from test_web_helpers import LiveSink, running_sink

pytestmark = pytest.mark.slow

UPLOAD_LIMIT = 256 * 1024        # a small limit for the server built here: same code, less to send


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSink]:
    folder = tmp_path_factory.mktemp("web-input")
    for name in ("allowed", "also-allowed", "private"):
        (folder / name).mkdir()
    # no segmenter: the output is the background alone (fail closed), which is what these tests look at
    with running_sink(folder, with_segmenter=False,
                      background_dirs=[str(folder / "allowed"), str(folder / "also-allowed")]) as sink:
        yield sink


@pytest.fixture
def folders(live: LiveSink) -> dict[str, Path]:
    allowed = Path(live.app.config.background_dirs[0])
    return {"allowed": allowed, "also": Path(live.app.config.background_dirs[1]),
            "private": allowed.parent / "private"}


def picture(path: Path, bgr: tuple[int, int, int]) -> Path:
    assert cv2.imwrite(str(path), np.full((90, 160, 3), bgr, np.uint8))
    return path


def shows(live: LiveSink, bgr: tuple[int, int, int]) -> bool:
    corner = live.snapshot()[:40, :40].reshape(-1, 3).mean(axis=0)
    return bool(np.abs(corner - bgr).max() < 25)


def set_background(live: LiveSink, spec: str) -> tuple[int, dict]:
    code, body, _ = live.request("POST", "/api/settings", {"background": spec})
    return code, body


# -- background files -----------------------------------------------------------------------------------

def test_a_file_in_an_allowed_folder_is_used(live: LiveSink, folders) -> None:
    for folder, colour in ((folders["allowed"], (255, 0, 255)), (folders["also"], (0, 200, 255))):
        path = picture(folder / "beach.png", colour)
        code, body = set_background(live, str(path))
        assert code == 200, body
        assert shows(live, colour)


def test_files_elsewhere_and_missing_files_get_the_same_answer(live: LiveSink, folders) -> None:
    secret = picture(folders["private"] / "secret.png", (0, 0, 255))
    live.change(background="green")
    answers = {}
    for name, spec in {
        "outside": str(secret),
        "missing outside": str(folders["private"] / "nothing.png"),
        "missing inside": str(folders["allowed"] / "nothing.png"),
        "dot-dot": f"{folders['allowed']}/../private/secret.png",
        "system file": "/etc/passwd",
    }.items():
        code, body = set_background(live, spec)
        assert code == 400, (name, body)
        answers[name] = body["error"].replace(repr(spec), "SPEC")
    assert len(set(answers.values())) == 1, answers        # nothing tells "exists" from "missing"
    assert "--background-dir" in answers["outside"] and "\n" not in answers["outside"]
    assert live.status()["settings"]["background"] == "green" and shows(live, (0, 255, 0))


def test_a_symlink_out_of_an_allowed_folder_is_refused(live: LiveSink, folders) -> None:
    secret = picture(folders["private"] / "secret-room.png", (0, 0, 255))
    link = folders["allowed"] / "innocent.png"
    link.unlink(missing_ok=True)
    os.symlink(secret, link)
    code, body = set_background(live, str(link))
    assert code == 400 and "not an upload or a file in an allowed folder" in body["error"]
    # a symlink to a folder out of the allowed one does not open it either
    (folders["allowed"] / "private-link").unlink(missing_ok=True)
    os.symlink(folders["private"], folders["allowed"] / "private-link")
    code, body = set_background(live, str(folders["allowed"] / "private-link" / "secret-room.png"))
    assert code == 400


def test_built_in_backgrounds_need_no_folder(live: LiveSink) -> None:
    for spec in ("default", "blur:20", "green", "#1e90ff", "none"):
        code, body = set_background(live, spec)
        assert code == 200, (spec, body)


# -- body limits ----------------------------------------------------------------------------------------

def _send_chunked(url: str, path: str, content_type: str, chunks: Iterator[bytes]) -> tuple[int, dict]:
    """POST with Transfer-Encoding: chunked (no Content-Length) and never send the last chunk.

    A server that counts while the body streams in answers 413 as soon as the limit is passed;
    one that waits for the whole body would never answer (the read times out and the test fails).
    """
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n".encode())
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass                       # the server answered and closed while we were still sending
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())
    finally:
        sock.close()


@pytest.fixture
def small_server(live: LiveSink, tmp_path: Path) -> Iterator[WebServer]:
    server = WebServer(live.app, port=0, token="", upload_dir=tmp_path / "uploads",
                       upload_max_bytes=UPLOAD_LIMIT).start()
    try:
        yield server
    finally:
        server.stop()


def _left_in(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("form", ["raw", "multipart"])
def test_chunked_upload_over_the_limit_is_refused_and_leaves_nothing(small_server: WebServer, form: str) -> None:
    chunk = os.urandom(16 * 1024)
    count = UPLOAD_LIMIT // len(chunk) + 8                         # over the limit, never announced
    if form == "raw":
        content_type, head = "image/jpeg", b""
    else:
        boundary = "holocamtest"
        content_type = f"multipart/form-data; boundary={boundary}"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode()
    body = iter([head + b"\xff\xd8", *([chunk] * count)])          # no end: refused while streaming
    code, answer = _send_chunked(small_server.url, "/api/backgrounds", content_type, body)
    assert code == 413 and "MiB" in answer["error"]
    assert _left_in(small_server.uploads.folder) == []             # no file, no half-written temp file


def test_json_body_over_the_limit_is_refused(live: LiveSink) -> None:
    before = live.status()["settings"]
    big = json.dumps({"effect": "none", "padding": "x" * (MAX_JSON_BYTES + 10)}).encode()
    code, body, _ = live.request("POST", "/api/settings", data=big, headers={"Content-Type": "application/json"})
    assert code == 413 and str(MAX_JSON_BYTES) in body["error"]     # announced with Content-Length
    pieces = iter([big[i:i + 4096] for i in range(0, len(big), 4096)])
    code, body = _send_chunked(live.url, "/api/settings", "application/json", pieces)
    assert code == 413 and str(MAX_JSON_BYTES) in body["error"]     # streamed, no Content-Length
    assert live.status()["settings"] == before
