"""The sink's web server: aiohttp on its own thread and event loop, next to the frame loop.

`WebServer(app, ...).start()` binds (failing at once, in the caller, with a one-line ConfigError
if it cannot), serves the page and the API (`capture_sink.web.api`), and adds the preview writer
to the app's outputs. `stop()` ends open streams, closes the listener and joins the thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from capture_sink.config import ConfigError
from capture_sink.outputs.steady import SteadyWriter
from shared.security import is_loopback_host

from .api import Api
from .guard import make_guard
from .preview import PREVIEW_FPS, PreviewHub, PreviewOutput
from .uploads import UPLOAD_MAX_BYTES, UploadStore

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 2.0


class WebServer:
    """The page, the MJPEG preview and the JSON API of one SinkApp.

    Args:
        app: the SinkApp (its source must be open: the preview takes its frame size).
        host, port: where to listen; port 0 picks a free one (see `url`).
        token: required by every request when set; required to bind anything but loopback.
        show_token: log the URL with the token (a token the user did not write anywhere).
        public_url: the page's address as the browser sees it, for that log line (a container's
            published port); empty: the bound address.
        upload_dir: folder for uploaded backgrounds.
        upload_max_bytes: the largest upload accepted.
        preview_fps: rate of the preview stream.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 8080, token: str = "",
                 upload_dir: str | Path, upload_max_bytes: int = UPLOAD_MAX_BYTES,
                 preview_fps: float = PREVIEW_FPS, show_token: bool = False, public_url: str = "") -> None:
        if not token and not is_loopback_host(host):
            raise ConfigError(f"refusing to serve the web page on {host} without a token: anyone who can reach "
                              f"it would see the webcam; set --http-token or bind 127.0.0.1")
        self.app = app
        self.host, self.port, self.token = host, int(port), token
        self.show_token = show_token
        self.public_url = public_url.rstrip("/") + "/" if public_url else ""
        self.hub = PreviewHub()
        self.uploads = UploadStore(upload_dir, max_bytes=upload_max_bytes)
        self.preview_fps = min(float(preview_fps), float(getattr(app.config, "fps", preview_fps)))
        self.api = Api(app, self.hub, self.uploads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._bound: tuple[str, int] | None = None
        self.preview: PreviewOutput | None = None
        self.preview_writer: SteadyWriter | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "WebServer":
        """Bind and serve; raises ConfigError if the address cannot be used."""
        self._thread = threading.Thread(target=self._serve, name="holocam-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise ConfigError(f"the web server did not start within {START_TIMEOUT_S:.0f} s")
        if self._start_error is not None:
            self._thread.join()
            exc = self._start_error
            if isinstance(exc, OSError):
                raise ConfigError(f"cannot serve the web page on {self.host}:{self.port} ({exc.strerror}): choose "
                                  f"another --http-port (0 picks a free one) or stop the program using it") from None
            raise exc
        self._start_preview()
        if self.token and self.show_token:   # once: the URL to open
            logger.info("I: web page at %s?token=%s", self.public_url or self.url, self.token)
        else:
            logger.info("I: web page at %s%s", self.url, " (token required)" if self.token else "")
        return self

    def _start_preview(self) -> None:
        source = getattr(self.app, "source", None)
        if source is None:
            return  # no frames to show (an app that was not started): the API still works
        self.preview = PreviewOutput(width=source.width, height=source.height, fps=self.preview_fps, hub=self.hub)
        self.preview_writer = SteadyWriter(self.preview, fps=self.preview_fps, start_black=False).start()
        self.app.writers.append(self.preview_writer)

    def stop(self) -> None:
        """Close streams and the listener, stop the preview writer; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(SHUTDOWN_TIMEOUT_S + 3.0)
            if thread.is_alive():
                logger.warning("W: the web server thread did not stop in time")
        if self.preview_writer is not None:
            if self.preview_writer in self.app.writers:
                self.app.writers.remove(self.preview_writer)   # a running frame loop skips it at worst once
            self.preview_writer.stop()
            self.preview_writer = None
        if self.preview is not None:
            self.preview.close()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # handed to start()
            self._start_error = exc
            self._ready.set()
            self._finish(loop)
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._finish(loop)

    def _finish(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the server, then let every task it leaves (open connections) end before the loop closes."""
        loop.run_until_complete(self._close())
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _open(self) -> None:
        self.hub.attach(asyncio.get_running_loop())
        application = web.Application(middlewares=[make_guard(self.token, check_host=is_loopback_host(self.host))],
                                      client_max_size=self.uploads.max_bytes + 1024 * 1024)
        self.api.routes(application.router)
        self._runner = web.AppRunner(application, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                                     handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses
        self._bound = tuple(addresses[0][:2]) if addresses else (self.host, self.port)

    async def _close(self) -> None:
        self.hub.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- facts ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._bound or (self.host, self.port)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(str(host), host)   # a URL a browser here can open
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def preview_viewers(self) -> int:
        """Open MJPEG streams (someone watching the preview counts as a viewer for on-demand)."""
        return self.hub.clients
