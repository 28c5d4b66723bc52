"""The HTTP endpoints: the page, the MJPEG stream, snapshots and the JSON API (see API.md).

Handlers run on the web server's asyncio loop and never block it: SinkApp's control methods only
queue changes, JPEG encoding happens on the preview writer's thread, and the one slow step of an
upload (decoding the picture to validate it) runs in the loop's executor.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import web

from capture_sink.control_api import SinkControl
from capture_sink.errors import USER_ERRORS

from .control import (ChangeError, apply_change, check_change, choices, current_settings, wait_applied)
from .background_files import BackgroundFiles
from .guard import json_error
from .preview import PreviewHub
from .uploads import UploadError, UploadStore, too_large

logger = logging.getLogger(__name__)

STREAM_PATH = "/stream.mjpg"
BOUNDARY = "holocamframe"
CLIENT_WAIT_S = 1.0          # a stream wakes this often to notice a closed tab or a shutdown
SEND_TIMEOUT_S = 10.0        # a viewer that takes no frame for this long is dropped (a dead laptop)
SNAPSHOT_TIMEOUT_S = 3.0
MAX_JSON_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
STATIC_FILES = {"/": ("index.html", "text/html"), "/static/page.js": ("page.js", "text/javascript"),
                "/static/page.css": ("page.css", "text/css")}
ENDPOINTS = {
    "GET /": "the page: live preview, numbers and controls",
    f"GET {STREAM_PATH}": "the output as MJPEG (multipart/x-mixed-replace); counts as a viewer",
    "GET /api/snapshot.jpg": "one JPEG of the output, encoded after the request arrived",
    "GET /api/status": "settings, what the output shows, stats (fps, latency, replicas), viewers, choices",
    "GET /api/settings": "the live settings",
    "POST /api/settings": "change any subset of the settings (JSON object), all or nothing",
    "GET /api/backgrounds": "uploaded background images",
    "POST /api/backgrounds": "upload a JPEG/PNG (multipart field 'file', or the raw image body) and use it",
}


class Api:
    """The endpoints of one WebServer, bound to one running sink."""

    def __init__(self, app: SinkControl, hub: PreviewHub, uploads: UploadStore) -> None:
        self.app = app
        self.hub = hub
        self.uploads = uploads
        self.files = BackgroundFiles([uploads.folder, *app.config.background_dirs],
                                     startup=str(app.config.background))
        self._change_lock = asyncio.Lock()   # one change at a time: each builds on the last one applied

    def routes(self, router: web.UrlDispatcher) -> None:
        for path in STATIC_FILES:
            router.add_get(path, self.static)
        router.add_get(STREAM_PATH, self.stream)
        router.add_get("/api", self.index)
        router.add_get("/api/status", self.status)
        router.add_get("/api/settings", self.get_settings)
        router.add_post("/api/settings", self.post_settings)
        router.add_get("/api/snapshot.jpg", self.snapshot)
        router.add_get("/api/backgrounds", self.list_backgrounds)
        router.add_post("/api/backgrounds", self.upload_background, expect_handler=self.expect_upload)

    # -- page ------------------------------------------------------------------------------------
    async def static(self, request: web.Request) -> web.Response:
        name, content_type = STATIC_FILES[request.path]
        body = resources.files("capture_sink.web").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-cache, no-store, private", "Pragma": "no-cache",
            "X-Content-Type-Options": "nosniff"})
        await response.prepare(request)
        hub = self.hub
        hub.clients += 1
        seen = 0
        try:
            while not hub.closing:
                seen, jpeg = await hub.next_frame(seen, CLIENT_WAIT_S)
                if jpeg is None:
                    if request.transport is None or request.transport.is_closing():
                        break   # the tab was closed while no frames came
                    continue
                part = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n" % (
                    BOUNDARY.encode(), len(jpeg), jpeg)
                await asyncio.wait_for(response.write(part), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            logger.info("I: preview client %s took no frame for %.0f s: dropped", request.remote, SEND_TIMEOUT_S)
            if request.transport is not None:
                request.transport.abort()   # a half-written part cannot be finished cleanly
        except (ConnectionResetError, ConnectionError) as exc:
            logger.debug("D: preview client %s left: %r", request.remote, exc)
        finally:
            hub.clients -= 1
        return response

    async def snapshot(self, request: web.Request) -> web.Response:
        jpeg = await self.hub.snapshot(SNAPSHOT_TIMEOUT_S)
        if jpeg is None:
            return json_error(503, f"no output frame within {SNAPSHOT_TIMEOUT_S:.0f} s: is the sink's "
                                   f"source delivering frames? (see the sink's log)")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # -- JSON API ------------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        return web.json_response({"endpoints": ENDPOINTS, "docs": "capture_sink/web/API.md"})

    async def status(self, request: web.Request) -> web.Response:
        app = self.app
        stats = app.stats.snapshot()
        transport = app.transport_stats()
        if transport is not None:
            stats["replicas"] = transport.get("replicas", 0)
            stats["masks_by_replica"] = transport.get("masks_by_replica", {})
            stats["replica_devices"] = {r["replica_id"]: r["device"] for r in transport.get("per_replica", [])}
        stats["preview_viewers"] = self.hub.clients
        watch = app.viewer_watch
        return web.json_response({
            "settings": current_settings(app),
            "output": app.output_state(),
            "stats": stats,
            "viewers": watch.snapshot() if watch is not None else None,
            "choices": {**choices(app), "uploads": [str(p) for p in self.uploads.list()]},
        }, dumps=_dumps)

    async def get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(current_settings(self.app), dumps=_dumps)

    async def post_settings(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        async with self._change_lock:
            try:
                change = check_change(self.app, body, self.files)
                apply_change(self.app, change)
            except (ChangeError, *USER_ERRORS) as exc:
                return json_error(400, str(exc))
            applied = await wait_applied(self.app, change.expected)
        return web.json_response({"settings": current_settings(self.app), "pending": not applied}, dumps=_dumps)

    async def list_backgrounds(self, request: web.Request) -> web.Response:
        return web.json_response({"uploads": [str(p) for p in self.uploads.list()],
                                  "folder": str(self.uploads.folder)})

    async def expect_upload(self, request: web.Request) -> web.StreamResponse | None:
        """Answer `Expect: 100-continue` (curl sends it for big files): refuse too-big bodies unsent."""
        if request.content_length is not None and request.content_length > self.uploads.max_bytes + READ_CHUNK:
            return json_error(413, str(too_large(self.uploads.max_bytes)))
        if request.version >= (1, 1):
            request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    async def upload_background(self, request: web.Request) -> web.Response:
        try:
            data = await self._read_upload(request)
            loop = asyncio.get_running_loop()
            path = await loop.run_in_executor(None, self.uploads.save, data)
        except UploadError as exc:
            return json_error(exc.status, str(exc))
        async with self._change_lock:
            try:
                change = check_change(self.app, {"background": str(path)}, self.files)
                apply_change(self.app, change)
            except (ChangeError, *USER_ERRORS) as exc:
                return json_error(400, str(exc))
            applied = await wait_applied(self.app, change.expected)
        return web.json_response({"path": str(path), "settings": current_settings(self.app), "pending": not applied},
                                 dumps=_dumps)

    async def _read_upload(self, request: web.Request) -> bytes:
        limit = self.uploads.max_bytes
        if request.content_length is not None and request.content_length > limit + READ_CHUNK:
            raise too_large(limit)   # multipart framing adds a little: allow one chunk for it
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "name", None) != "file":
                    continue
                return await _read_limited(part, limit)
            raise UploadError("no file in the form: send the image as the multipart field 'file'")
        if request.content_type in ("image/jpeg", "image/png", "application/octet-stream"):
            return await _read_limited(request.content, limit)
        raise UploadError(f"send the image as multipart/form-data (field 'file') or as the raw body with "
                          f"Content-Type image/jpeg or image/png, not {request.content_type}")


async def _read_limited(source: Any, limit: int) -> bytes:
    """Read a body or a multipart part, refusing more than `limit` bytes as soon as they come."""
    chunks: list[bytes] = []
    total = 0
    while True:
        if hasattr(source, "read_chunk"):
            chunk = await source.read_chunk(READ_CHUNK)
        else:
            chunk = await source.read(READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the settings as JSON with Content-Type: application/json")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=request.content_length,
                                            text=f"a settings change is at most {MAX_JSON_BYTES} bytes")
    try:
        raw = await _read_limited(request.content, MAX_JSON_BYTES)
    except UploadError:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON_BYTES, actual_size=MAX_JSON_BYTES + 1,
                                            text=f"a settings change is at most {MAX_JSON_BYTES} bytes") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON ({exc})") from None


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
