"""The sink's validated configuration: one dataclass, checked by named `verify_*` functions.

Command-line flags (and their HOLOCAM_* environment defaults, see __main__) fill `SinkConfig`;
the validated object is what the app's constructors receive. Nothing deeper reads os.environ.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from shared.protocol import FRAME_ENCODINGS
from shared.security import is_loopback_host

logger = logging.getLogger(__name__)

PACING_POLICIES = ("wait", "latest")
NO_MASK_MODES = ("hide", "blur", "camera")      # capture_sink.failclosed
DEFAULT_DEVICE = "/dev/video20"


class ConfigError(ValueError):
    """A bad setting; the message is one line that names the fix."""


@dataclass
class SinkConfig:
    source: str = "auto"                 # auto | demo | /dev/videoN | N | video file | image file
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    bind: list[str] = field(default_factory=lambda: ["tcp://127.0.0.1:5555"])
    segmenters: list[str] = field(default_factory=list)   # replicas that bind; the sink connects
    curve_dir: str | None = None         # CurveZMQ keys (make keys): sink pair + authorized/ allow-list
    insecure: bool = False
    compose_network: bool = False        # set by the compose files: plain TCP on the private network
    encoding: str = "raw"
    preset: str = "default"
    effect: str = "hologram"
    background: str = "default"
    outputs: list[str] = field(default_factory=lambda: ["auto"])
    device: str = DEFAULT_DEVICE
    v4l2_backend: str = "pyvirtualcam"
    v4l2_format: str = "YUYV"            # YUYV (every consumer takes it) | I420
    file_path: str = "holocam-output.mp4"
    pacing: str = "wait"
    mask_budget_ms: float = 33.0
    max_mask_age_ms: float = 500.0       # an older mask is not used: the person is hidden (failclosed.py)
    no_mask: str = "hide"                # without a valid mask: hide (background only) | blur | camera
    with_segmenter: bool = False
    health_file: str | None = None       # touched by the frame loop; the container HEALTHCHECK reads it
    segmenter_threads: int = 1
    motion_skip: bool = True             # reuse the mask while nothing moved (capture_sink/motion.py)
    opencv_threads: int = 1              # OpenCV's thread pool in the sink (1: least CPU per frame)
    # -- live control (issue 8: capture_sink/web, viewers.py, reload.py) --
    http: bool = True                    # the web page + JSON API (capture_sink.web)
    http_host: str = "127.0.0.1"
    http_port: int = 8080                # 0 picks a free port (logged)
    http_public_url: str = ""            # the page's address as the user's browser sees it (a container's
                                         # published port), for the URL the log prints; "" = the bound address
    http_token: str = ""                 # "" = the one in http_token_file, made on the first start
    http_token_file: str = ""            # "" = $XDG_CONFIG_HOME/holocam/http_token (capture_sink/web/token.py)
    http_auth: bool = True               # False: no token, loopback only, logs a warning
    upload_dir: str = ""                 # uploaded backgrounds; "" = $XDG_DATA_HOME/holocam/backgrounds
    background_dirs: list[str] = field(default_factory=list)  # folders the web page may take backgrounds from
    segmenting: str = "auto"             # auto: only while someone watches (on demand) | on | off
    # -- end live control --

    def output_options(self, kind: str) -> dict:
        if kind == "v4l2":
            return {"device": self.device, "backend": self.v4l2_backend, "pixel_format": self.v4l2_format}
        if kind == "file":
            return {"path": self.file_path}
        return {}


def verify_geometry(c: SinkConfig) -> None:
    if not (16 <= c.width <= 7680 and 16 <= c.height <= 4320):
        raise ConfigError(f"--width/--height {c.width}x{c.height} is out of range: use e.g. 1280x720")
    if c.width % 2 or c.height % 2:
        raise ConfigError(f"--width/--height {c.width}x{c.height} must be even (YUYV/I420 output needs it, and "
                          f"Chrome refuses odd widths): use {c.width // 2 * 2}x{c.height // 2 * 2}")
    if not (1.0 <= c.fps <= 120.0):
        raise ConfigError(f"--fps {c.fps} is out of range: use 1 to 120")


V4L2_FORMATS = ("YUYV", "I420")


def verify_output(c: SinkConfig) -> None:
    if c.v4l2_format not in V4L2_FORMATS:
        raise ConfigError(f"--v4l2-format {c.v4l2_format!r}: choose YUYV (default, every app takes it) or I420")


def verify_pacing(c: SinkConfig) -> None:
    if c.pacing not in PACING_POLICIES:
        raise ConfigError(f"--pacing {c.pacing!r}: choose one of {', '.join(PACING_POLICIES)}")
    if not (0.0 <= c.mask_budget_ms <= 1000.0):
        raise ConfigError(f"--mask-budget-ms {c.mask_budget_ms} is out of range: use 0 to 1000 (default 33)")
    if not (50.0 <= c.max_mask_age_ms <= 10000.0):
        raise ConfigError(f"--max-mask-age-ms {c.max_mask_age_ms} is out of range: use 50 to 10000 (default 500)")
    if c.no_mask not in NO_MASK_MODES:
        raise ConfigError(f"--no-mask {c.no_mask!r}: choose one of {', '.join(NO_MASK_MODES)}")


def verify_transport(c: SinkConfig) -> None:
    if c.encoding not in FRAME_ENCODINGS:
        raise ConfigError(f"--encoding {c.encoding!r}: choose one of {', '.join(FRAME_ENCODINGS)}")
    if not c.bind and not c.segmenters and not c.with_segmenter:
        raise ConfigError("no segmenter can reach this sink: keep --bind or add --segmenter tcp://HOST:5556")


# -- live control (issue 8) --
HTTP_TOKEN_MIN_CHARS = 16
SEGMENTING_MODES = ("auto", "on", "off")


def verify_http(c: SinkConfig) -> None:
    if not 0 <= c.http_port <= 65535:
        raise ConfigError(f"--http-port {c.http_port} is out of range: use 1..65535 (0 picks a free port)")
    if c.http_token and len(c.http_token) < HTTP_TOKEN_MIN_CHARS:
        raise ConfigError(f"--http-token is too short ({len(c.http_token)} characters): use at least "
                          f"{HTTP_TOKEN_MIN_CHARS}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    if c.http and not c.http_auth and not is_loopback_host(c.http_host):
        raise ConfigError(f"--no-http-auth with --http-host {c.http_host} would let other machines watch the "
                          f"webcam: drop --no-http-auth (a token is made for you) or bind 127.0.0.1")
    if c.http_public_url and not c.http_public_url.startswith(("http://", "https://")):
        raise ConfigError(f"HOLOCAM_HTTP_PUBLIC_URL {c.http_public_url!r} is not a URL: give the address the "
                          f"browser opens, e.g. http://127.0.0.1:8080/")
    if not c.http_auth and c.http_token:
        raise ConfigError("--no-http-auth and --http-token contradict each other: drop one of them")
    if c.segmenting not in SEGMENTING_MODES:
        raise ConfigError(f"--segmenting {c.segmenting!r}: choose one of {', '.join(SEGMENTING_MODES)}")
# -- end live control --


def verify_threads(c: SinkConfig) -> None:
    if not 1 <= c.opencv_threads <= 64:
        raise ConfigError(f"opencv_threads {c.opencv_threads} is out of range: use 1..64 (default 1; more "
                          f"lowers a frame's wall time a little and raises its CPU time)")


def resolve_auto(c: SinkConfig) -> None:
    """Turn `auto` choices into concrete ones, from what this machine has."""
    if c.source == "auto":
        cameras = sorted(Path("/dev").glob("video[0-9]*"), key=lambda p: int(p.name[5:]))
        cameras = [p for p in cameras if str(p) != c.device]
        c.source = str(cameras[0]) if cameras else "demo"
    if "auto" in c.outputs:
        has_loopback = os.path.exists(c.device)
        # The web page (--http, default on) shows the preview; --no-http means no web server at all.
        others = [k for k in c.outputs if k != "auto"]
        wanted = ["v4l2"] if has_loopback else []
        c.outputs = others + (wanted or ([] if others else ["null"]))
        c.outputs = list(dict.fromkeys(c.outputs))
        if c.outputs == ["null"] and not c.http:
            logger.warning("no loopback device at %s and --no-http: the output goes nowhere; load the module "
                           "(sudo modprobe v4l2loopback video_nr=20 exclusive_caps=1) or drop --no-http",
                           c.device)


def validate(c: SinkConfig) -> SinkConfig:
    verify_geometry(c)
    verify_output(c)
    verify_pacing(c)
    verify_transport(c)
    verify_threads(c)
    resolve_auto(c)
    verify_http(c)
    return c
