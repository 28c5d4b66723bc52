"""The sink's validated configuration: one dataclass, checked by named `verify_*` functions.

Command-line flags (and their HOLOCAM_* environment defaults, see __main__) fill `SinkConfig`;
the validated object is what the app's constructors receive. Nothing deeper reads os.environ.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

PACING_POLICIES = ("wait", "latest")
ENCODINGS = ("raw", "jpeg")
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
    file_path: str = "holocam-output.mp4"
    mjpeg_host: str = "127.0.0.1"
    mjpeg_port: int = 8080
    pacing: str = "wait"
    mask_budget_ms: float = 33.0
    with_segmenter: bool = False
    health_file: str | None = None       # touched by the frame loop; the container HEALTHCHECK reads it
    segmenter_threads: int = 1
    motion_skip: bool = True             # reuse the mask while nothing moved (capture_sink/motion.py)
    opencv_threads: int = 1              # OpenCV's thread pool in the sink (1: least CPU per frame)
    # -- live control (issue 8: capture_sink/web, viewers.py, reload.py) --
    http: bool = True                    # the web page + JSON API (capture_sink.web)
    http_host: str = "127.0.0.1"         # anything but loopback needs http_token
    http_port: int = 8080                # 0 picks a free port (logged)
    http_token: str = ""                 # required by every request when set
    upload_dir: str = ""                 # uploaded backgrounds; "" = $XDG_DATA_HOME/holocam/backgrounds
    segmenting: str = "auto"             # auto: only while someone watches (on demand) | on | off
    # -- end live control --

    def output_options(self, kind: str) -> dict:
        if kind == "v4l2":
            return {"device": self.device, "backend": self.v4l2_backend}
        if kind == "file":
            return {"path": self.file_path}
        if kind == "mjpeg":
            return {"host": self.mjpeg_host, "port": self.mjpeg_port}
        return {}


def verify_geometry(c: SinkConfig) -> None:
    if not (16 <= c.width <= 7680 and 16 <= c.height <= 4320):
        raise ConfigError(f"--width/--height {c.width}x{c.height} is out of range: use e.g. 1280x720")
    if c.width % 2 or c.height % 2:
        raise ConfigError(f"--width/--height {c.width}x{c.height} must be even (YUYV/I420 output needs it)")
    if not (1.0 <= c.fps <= 120.0):
        raise ConfigError(f"--fps {c.fps} is out of range: use 1 to 120")


def verify_pacing(c: SinkConfig) -> None:
    if c.pacing not in PACING_POLICIES:
        raise ConfigError(f"--pacing {c.pacing!r}: choose one of {', '.join(PACING_POLICIES)}")
    if not (0.0 <= c.mask_budget_ms <= 1000.0):
        raise ConfigError(f"--mask-budget-ms {c.mask_budget_ms} is out of range: use 0 to 1000 (default 33)")


def verify_transport(c: SinkConfig) -> None:
    if c.encoding not in ENCODINGS:
        raise ConfigError(f"--encoding {c.encoding!r}: choose one of {', '.join(ENCODINGS)}")
    if not c.bind and not c.segmenters and not c.with_segmenter:
        raise ConfigError("no segmenter can reach this sink: keep --bind or add --segmenter tcp://HOST:5556")


# -- live control (issue 8) --
HTTP_TOKEN_MIN_CHARS = 16
SEGMENTING_MODES = ("auto", "on", "off")


def _is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def verify_http(c: SinkConfig) -> None:
    if not 0 <= c.http_port <= 65535:
        raise ConfigError(f"--http-port {c.http_port} is out of range: use 1..65535 (0 picks a free port)")
    if c.http_token and len(c.http_token) < HTTP_TOKEN_MIN_CHARS:
        raise ConfigError(f"--http-token is too short ({len(c.http_token)} characters): use at least "
                          f"{HTTP_TOKEN_MIN_CHARS}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'")
    if c.http and not c.http_token and not _is_loopback_host(c.http_host):
        raise ConfigError(f"--http-host {c.http_host} lets other machines watch the webcam: set --http-token "
                          f"(or HOLOCAM_HTTP_TOKEN) to a secret, e.g. python -c 'import secrets; "
                          f"print(secrets.token_urlsafe(24))', or bind 127.0.0.1")
    if c.segmenting not in SEGMENTING_MODES:
        raise ConfigError(f"--segmenting {c.segmenting!r}: choose one of {', '.join(SEGMENTING_MODES)}")
    if c.http and "mjpeg" in c.outputs and c.mjpeg_port == c.http_port and c.http_port != 0:
        raise ConfigError(f"the MJPEG preview and the web page both want port {c.http_port}: drop --output mjpeg "
                          f"(the web page at / shows the preview) or give --mjpeg-port another port")
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
        # The web page (--http, default on) shows the preview; the stdlib MJPEG output only without it.
        others = [k for k in c.outputs if k != "auto"]
        wanted = (["v4l2"] if has_loopback else []) + ([] if c.http else ["mjpeg"])
        c.outputs = others + (wanted or ([] if others else ["null"]))
        c.outputs = list(dict.fromkeys(c.outputs))


def validate(c: SinkConfig) -> SinkConfig:
    verify_geometry(c)
    verify_pacing(c)
    verify_transport(c)
    verify_threads(c)
    resolve_auto(c)
    verify_http(c)
    return c
