"""MJPEG-over-HTTP preview: a page at / and the stream at /stream.mjpg (multipart/x-mixed-replace).

Uses the standard library's ThreadingHTTPServer in a background thread: enough for a local
preview (a later issue brings a proper web UI). Each frame is JPEG-encoded once, in ``write``,
and only while someone watches; every client thread then sends the newest JPEG and skips the
ones it was too slow for, so a slow browser never queues frames. Binds 127.0.0.1 by default:
webcam frames are private.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from capture_sink.outputs.base import Output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

STREAM_PATH = "/stream.mjpg"
BOUNDARY = "holocamframe"
CLIENT_WAIT_S = 0.5  # how often a client thread wakes to notice shutdown
SEND_TIMEOUT_S = 10.0  # a client that takes no data for this long is dropped
SHUTDOWN_WAIT_S = 2.0

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>holocam preview</title>
<style>body{margin:0;background:#111;display:flex;height:100vh;align-items:center;justify-content:center}
img{max-width:100%;max-height:100vh}</style></head>
<body><img src="STREAM" alt="holocam preview"></body></html>
""".replace("STREAM", STREAM_PATH).encode()


class _NewestJpeg:
    """The newest encoded frame, a sequence number, and a condition client threads wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jpeg: bytes | None = None
        self._seq = 0
        self.closing = False
        self.clients = 0

    def publish(self, jpeg: bytes) -> None:
        with self._cond:
            self._jpeg = jpeg
            self._seq += 1
            self._cond.notify_all()

    def wait_newer(self, seen: int, timeout: float) -> tuple[int, bytes | None]:
        """Wait until a frame newer than ``seen`` exists; return (seq, jpeg), jpeg None on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seen or self.closing, timeout)
            if self._seq > seen and not self.closing:
                return self._seq, self._jpeg
            return seen, None

    def close(self) -> None:
        with self._cond:
            self.closing = True
            self._cond.notify_all()

    def add_client(self, delta: int) -> None:
        with self._cond:
            self.clients += delta


class _PreviewServer(ThreadingHTTPServer):
    daemon_threads = True  # client threads end on their own (closing flag); never block exit
    frames: _NewestJpeg


class _PreviewHandler(BaseHTTPRequestHandler):
    server: _PreviewServer
    timeout = SEND_TIMEOUT_S

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send_page()
        elif path == STREAM_PATH:
            self._send_stream()
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "holocam serves / and " + STREAM_PATH)

    def _send_page(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_PAGE)))
        self.end_headers()
        self.wfile.write(_PAGE)

    def _send_stream(self) -> None:
        frames = self.server.frames
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store, private")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        frames.add_client(+1)
        seen = 0
        try:
            while not frames.closing:
                seen, jpeg = frames.wait_newer(seen, CLIENT_WAIT_S)
                if jpeg is None:
                    if self._peer_closed():  # notice a closed tab even while no frames come
                        break
                    continue
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg + b"\r\n"
                )
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as e:
            logger.debug("D: preview client %s left: %s", self.client_address[0], e)
        finally:
            frames.add_client(-1)

    def _peer_closed(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        logger.debug("D: preview %s " + format, self.client_address[0], *args)


class MJPEGOutput(Output):
    """Serves the frames as an MJPEG stream for a browser preview.

    Args:
        width, height, fps: frame size and rate.
        host: address to bind; 127.0.0.1 by default (anything else exposes the webcam to the network).
        port: TCP port; 0 picks a free one (see ``url``).
        quality: JPEG quality 1..100.
    """

    KEY = "mjpeg"

    def __init__(self, *, width: int, height: int, fps: float, host: str = "127.0.0.1", port: int = 8080,
                 quality: int = 80) -> None:
        super().__init__(width=width, height=height, fps=fps)
        if not 1 <= quality <= 100:
            raise OutputError(f"JPEG quality {quality} is out of range: give 1..100")
        self._encode_params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        try:
            self._server = _PreviewServer((host, port), _PreviewHandler)
        except OSError as e:
            raise OutputError(
                f"cannot serve the preview on {host}:{port} ({e.strerror}): choose another port "
                f"(0 picks a free one) or stop the program using it"
            ) from None
        self._server.frames = _NewestJpeg()
        if not _is_loopback(host):
            logger.warning("W: MJPEG preview bound to %s: anyone who can reach this machine sees the webcam", host)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="mjpeg-preview", daemon=True
        )
        self._thread.start()
        logger.info("I: preview at %s", self.url)

    @property
    def url(self) -> str:
        """The preview page's address, with the port actually bound."""
        host, port = self._server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    @property
    def stream_url(self) -> str:
        return self.url.rstrip("/") + STREAM_PATH

    @property
    def viewers(self) -> int:
        return self._server.frames.clients

    def write(self, frame_bgr: np.ndarray) -> None:
        """Encode the frame once and hand it to every client (skipped while nobody watches)."""
        self._check_frame(frame_bgr)
        self.frames_written += 1
        if self._server.frames.clients == 0:
            return
        ok, jpeg = cv2.imencode(".jpg", frame_bgr, self._encode_params)
        if not ok:
            raise OutputError("OpenCV could not encode a JPEG for the preview: check the frame is BGR uint8")
        self._server.frames.publish(jpeg.tobytes())

    def _close(self) -> None:
        frames = self._server.frames
        frames.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(SHUTDOWN_WAIT_S)
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while frames.clients and time.monotonic() < deadline:
            time.sleep(0.02)
        if frames.clients:
            logger.warning("W: %d preview clients still connected at shutdown", frames.clients)
        logger.info("I: preview at %s stopped", self.url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
