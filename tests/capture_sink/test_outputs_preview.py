"""Preview and utility outputs: video file, MJPEG over real HTTP, null, window; and the registry."""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time

import cv2
import numpy as np
import pytest
import skimage.data

from capture_sink.outputs import OUTPUTS, OutputError, create_output
from capture_sink.outputs.mjpeg import BOUNDARY, STREAM_PATH
from capture_sink.outputs.window import opencv_gui_backend

W, H = 320, 240


@functools.cache
def _panorama() -> np.ndarray:
    return cv2.resize(np.ascontiguousarray(skimage.data.astronaut()[..., ::-1]), (W * 2, H))


def frames_of(count: int) -> list[np.ndarray]:
    """A real photo panned sideways: every frame differs."""
    base = _panorama()
    return [np.ascontiguousarray(base[:, i * 16 : i * 16 + W]) for i in range(count)]


# -- registry -----------------------------------------------------------------------------------

def test_registry_lists_every_output():
    assert set(OUTPUTS) == {"v4l2", "window", "file", "mjpeg", "null"}
    assert all(cls.KEY == key for key, cls in OUTPUTS.items())


def test_unknown_output_names_the_choices():
    with pytest.raises(OutputError, match=r"unknown output 'ndi': choose one of file, mjpeg, null, v4l2, window"):
        create_output("ndi", width=W, height=H, fps=30)


def test_unknown_option_names_the_options():
    with pytest.raises(OutputError, match=r"output 'file' has no option devise: its options are path, fourcc"):
        create_output("file", width=W, height=H, fps=30, devise="/dev/video20")


# -- null ---------------------------------------------------------------------------------------

def test_null_counts_frames_and_checks_them():
    with create_output("null", width=W, height=H, fps=30) as out:
        for frame in frames_of(5):
            out.write(frame)
        assert out.frames_written == 5
        assert out.viewers is None
        with pytest.raises(OutputError, match=r"takes BGR uint8 frames of shape \(240, 320, 3\), got uint8 \(240, 320\)"):
            out.write(np.zeros((H, W), np.uint8))
    assert out.closed
    with pytest.raises(OutputError, match="null output is closed"):
        out.write(frames_of(1)[0])


# -- file ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("extension, fourcc", [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_file_round_trip(tmp_path, extension, fourcc):
    path = tmp_path / f"out{extension}"
    frames = frames_of(12)
    with create_output("file", width=W, height=H, fps=15, path=path) as out:
        assert out.fourcc == fourcc
        for frame in frames:
            out.write(frame)
    capture = cv2.VideoCapture(str(path))
    try:
        assert capture.get(cv2.CAP_PROP_FRAME_WIDTH) == W and capture.get(cv2.CAP_PROP_FRAME_HEIGHT) == H
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(15, abs=0.1)
        read_back = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            read_back.append(frame)
    finally:
        capture.release()
    assert len(read_back) == len(frames)
    for original, decoded in zip(frames, read_back):
        error = np.abs(original.astype(np.int16) - decoded).mean()
        assert error < 8, f"mean abs error {error:.1f}"
    # Each decoded frame is closest to its own original (content, order).
    assert np.abs(frames[0].astype(np.int16) - read_back[0]).mean() < np.abs(frames[6].astype(np.int16) - read_back[0]).mean()


def test_file_with_unknown_extension_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"cannot tell the video codec from 'out.xyz': name the file with one of .mp4"):
        create_output("file", width=W, height=H, fps=30, path=tmp_path / "out.xyz")


def test_file_in_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match=r"folder .*nowhere does not exist: create it"):
        create_output("file", width=W, height=H, fps=30, path=tmp_path / "nowhere" / "out.mp4")


def test_file_that_cannot_be_opened_is_refused(tmp_path):
    target = tmp_path / "taken.avi"
    target.mkdir()  # a folder where the file should go
    with pytest.raises(OutputError, match=r"OpenCV cannot write .*taken.avi as MJPG"):
        create_output("file", width=W, height=H, fps=30, path=target)


# -- MJPEG over HTTP ----------------------------------------------------------------------------

class StreamReader:
    """Reads multipart/x-mixed-replace parts from a real HTTP connection."""

    def __init__(self, url_host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(url_host, port, timeout=5)
        self.connection.request("GET", STREAM_PATH)
        self.response = self.connection.getresponse()

    def next_jpeg(self) -> np.ndarray:
        stream = self.response
        line = stream.readline()
        while line in (b"\r\n", b""):
            if line == b"":
                raise EOFError("stream ended")
            line = stream.readline()
        assert line.strip() == f"--{BOUNDARY}".encode()
        headers = {}
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, value = line.decode().split(":", 1)
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = stream.read(int(headers["content-length"]))
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None, "part is not a JPEG"
        return image

    def close(self) -> None:
        self.response.close()  # holds the socket's file: the TCP connection closes with both
        self.connection.close()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_mjpeg_serves_page_and_changing_frames(tmp_path):
    frames = frames_of(3)
    with create_output("mjpeg", width=W, height=H, fps=30, port=0) as out:
        host, port = out._server.server_address[:2]
        assert host == "127.0.0.1"  # private by default
        page = http.client.HTTPConnection(host, port, timeout=5)
        page.request("GET", "/")
        response = page.getresponse()
        assert response.status == 200 and STREAM_PATH.encode() in response.read()
        page.request("GET", "/nothing-here")
        assert page.getresponse().status == 404
        page.close()

        assert out.viewers == 0
        reader = StreamReader(host, port)
        assert reader.response.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        wait_until(lambda: out.viewers == 1)
        received = []
        for frame in frames:
            out.write(frame)
            received.append(reader.next_jpeg())
        reader.close()
        wait_until(lambda: out.viewers == 0)

    for frame, image in zip(frames, received):
        assert image.shape == frame.shape
        assert np.abs(frame.astype(np.int16) - image).mean() < 6
    assert np.abs(received[0].astype(np.int16) - received[2]).mean() > 10, "frames must change"


def test_mjpeg_encodes_once_per_frame_for_all_clients(monkeypatch):
    encoded = []
    real_imencode = cv2.imencode

    def counting_imencode(*args, **kwargs):
        encoded.append(1)
        return real_imencode(*args, **kwargs)

    with create_output("mjpeg", width=W, height=H, fps=30, port=0) as out:
        host, port = out._server.server_address[:2]
        out.write(frames_of(1)[0])  # nobody watches: nothing to encode
        assert encoded == []
        readers = [StreamReader(host, port) for _ in range(3)]
        wait_until(lambda: out.viewers == 3)
        monkeypatch.setattr(cv2, "imencode", counting_imencode)
        out.write(frames_of(2)[1])
        images = [reader.next_jpeg() for reader in readers]
        for reader in readers:
            reader.close()
    assert len(encoded) == 1
    assert all(np.array_equal(images[0], image) for image in images)


def test_mjpeg_shuts_down_with_a_client_connected():
    out = create_output("mjpeg", width=W, height=H, fps=30, port=0)
    host, port = out._server.server_address[:2]
    reader = StreamReader(host, port)
    wait_until(lambda: out.viewers == 1)
    out.write(frames_of(1)[0])
    reader.next_jpeg()
    started = time.monotonic()
    out.close()
    assert time.monotonic() - started < 3
    with pytest.raises((EOFError, ConnectionError, http.client.IncompleteRead, TimeoutError)):
        for _ in range(3):
            reader.next_jpeg()
    reader.close()
    assert not any(t.name == "mjpeg-preview" for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection((host, port), timeout=1).close()


def test_mjpeg_port_in_use_names_the_fix():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=rf"cannot serve the preview on 127.0.0.1:{port} .*choose another port"):
            create_output("mjpeg", width=W, height=H, fps=30, port=port)


# -- window -------------------------------------------------------------------------------------

@pytest.mark.skipif(opencv_gui_backend() is not None, reason="this OpenCV has GUI support")
def test_window_without_gui_support_names_the_fix():
    with pytest.raises(OutputError) as raised:
        create_output("window", width=W, height=H, fps=30)
    message = str(raised.value)
    assert "pip install opencv-python" in message and "--output mjpeg" in message and "\n" not in message
