"""holocam's web page and JSON API: watch the output and change the look while the sink runs.

    python -m capture_sink run --with-segmenter          # then open http://127.0.0.1:8080/

The page shows the live output (MJPEG), FPS, latency, mask age and replica count, and has
controls for the effect, the background (built-ins, a colour, a file on this machine, or an
uploaded picture), the refinement preset, the threshold and blur sliders, pause (passthrough or
still frame) and on-demand segmenting. Everything it does goes through the JSON API, so scripts
and hotkeys can do the same (full reference: capture_sink/web/API.md):

    GET  /                     the page
    GET  /stream.mjpg          the output as MJPEG (counts as a viewer for on-demand segmenting)
    GET  /api                  the list of endpoints
    GET  /api/status           {"settings", "stats", "viewers", "choices"}
    GET  /api/settings         {"effect", "background", "preset", "refine", "paused", "segmenting", "segmenting_mode"}
    POST /api/settings         any subset of those keys as JSON; all applied, or none (400 + reason)
    GET  /api/snapshot.jpg     one JPEG of the output, encoded after the request came in
    GET  /api/backgrounds      uploaded pictures
    POST /api/backgrounds      upload a JPEG/PNG (multipart field "file", or the raw body) and use it

    curl -s -X POST -H 'Content-Type: application/json' -d '{"effect": "none"}' http://127.0.0.1:8080/api/settings
    curl -s -F file=@beach.jpg http://127.0.0.1:8080/api/backgrounds

Errors are one line of JSON, `{"error": "..."}`, with a 4xx status. The server listens on
127.0.0.1 by default, and every request must carry the token (`Authorization: Bearer TOKEN`, or
`/?token=TOKEN` once in a browser: the log prints that URL), on localhost too: made on the first
start and kept in the config folder (capture_sink/web/token.py). See `guard` for the rules.
"""

from __future__ import annotations

import logging
from pathlib import Path
from capture_sink.control_api import SinkControl

from .server import WebServer

__all__ = ["WebServer", "create_web_server"]

logger = logging.getLogger(__name__)


def create_web_server(app: SinkControl) -> WebServer:
    """A WebServer set up from `app.config` (http_host/port, the token, upload_dir).

    The token: `http_token` if set, else the one kept in `http_token_file` (made on the first
    start), else, only with `http_auth` off, none.
    """
    from capture_sink.settings_file import default_config_path, default_data_dir

    from .token import TOKEN_FILE_NAME, load_or_create_token

    c = app.config
    upload_dir = Path(c.upload_dir).expanduser() if c.upload_dir else default_data_dir() / "backgrounds"
    show_token = False
    if c.http_token:
        token = c.http_token
    elif c.http_auth:
        path = Path(c.http_token_file).expanduser() if c.http_token_file else default_config_path().parent / TOKEN_FILE_NAME
        token, _ = load_or_create_token(path)
        show_token = True   # the user never saw it otherwise: print the URL to open
    else:
        token = ""
        logger.warning("W: --no-http-auth: the web page has no token; every user and program on this machine "
                       "can watch the webcam and change the settings")
    return WebServer(app, host=c.http_host, port=c.http_port, token=token, upload_dir=upload_dir,
                     show_token=show_token, public_url=c.http_public_url)
