"""`python -m capture_sink doctor`: find what keeps holocam from working here, and say how to fix it.

Checks, in the order a user meets them:
1. v4l2loopback: the module is loaded (/sys/module/v4l2loopback) with exclusive_caps=1 for our
   device (Chrome and WebRTC apps list the camera only then), its release has no known breakage
   (capture_sink.outputs.v4l2_module), and the device node exists; Firefox profiles do not use
   PipeWire for cameras (capture_sink.firefox_prefs), which hides v4l2loopback cameras;
2. the device: we may open it (the `video` group), and QUERYCAP says it is a v4l2loopback output
   (`capture_sink.outputs.v4l2.open_loopback`, the same check the output makes);
3. the camera: it opens, captures, and offers MJPG (cheap to decode) at the configured size
   (VIDIOC_ENUM_FMT / VIDIOC_ENUM_FRAMESIZES);
4. weights: the segmenter's model file is in the cache (imported lazily: the sink's container
   image has no segmenter package, which is fine when segmenters run elsewhere);
5. segmenters: each `--segmenter` endpoint answers with a hello within `--timeout` seconds; on the
   `--bind` endpoints, a replica connects (unless --with-segmenter starts one). Probing a replica
   connects to it briefly, like a second sink: a sink it serves at that moment may miss a mask.
6. the web page's port is free;
7. autostart: the systemd user unit of `install-service` is installed, enabled and running.

Each finding prints as `[ ok ]`, `[warn]`, `[info]` or `[FAIL]` with the fix on the next line.
The exit status is 1 if any check failed, else 0.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import grp
import logging
import os
import re
import socket
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .capture import list_cameras
from .config import SinkConfig
from .outputs import v4l2_module
from .outputs.errors import OutputError

logger = logging.getLogger(__name__)

OK, WARN, INFO, FAIL = "ok", "warn", "info", "FAIL"
SYS = Path("/sys")
_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_DEVICE_CAPS = 0x80000000
_BUF_TYPE_VIDEO_CAPTURE = 1
_FRMSIZE_TYPE_DISCRETE = 1


@dataclass(frozen=True)
class Finding:
    """One result: `status` is ok / warn / info / FAIL; `fix` says what to do about it."""

    check: str
    status: str
    message: str
    fix: str = ""

    def lines(self) -> list[str]:
        out = [f"[{self.status:^4}] {self.check}: {self.message}"]
        if self.fix:
            out.append(f"       fix: {self.fix}")
        return out


def modprobe_line(device: str) -> str:
    digits = "".join(ch for ch in Path(device).name if ch.isdigit()) or "20"
    return f'sudo modprobe v4l2loopback devices=1 video_nr={digits} card_label="holocam" exclusive_caps=1'


def _on_host(line: str, in_container: bool) -> str:
    return f"on the host (a container cannot load modules): {line}" if in_container else line


# -- 1. v4l2loopback ------------------------------------------------------------------------------

def _param(sys_root: Path, name: str) -> list[str] | None:
    return v4l2_module.module_param(sys_root, name)


def check_module_version(*, sys_root: Path = SYS, in_container: bool = False) -> list[Finding]:
    """The loaded release (/sys/module/v4l2loopback/version) and what is known to break in it."""
    found = v4l2_module.module_version(sys_root)
    if found is None:
        return [Finding("v4l2loopback version", WARN, "the module does not say its version (a very old release?)",
                        _on_host("upgrade v4l2loopback to 0.13.2 or newer", in_container))]
    text, version = found
    if version is None:
        return [Finding("v4l2loopback version", INFO, f"{text!r} (not a release number; not checked)")]
    issues = v4l2_module.issues_for(version)
    findings = [Finding("v4l2loopback version", OK if not any(i.severity == WARN for i in issues) else INFO, text)]
    for issue in issues:
        findings.append(Finding("v4l2loopback version", issue.severity, f"{text}: {issue.problem}",
                                _on_host(issue.fix, in_container) if issue.severity == WARN else issue.fix))
    buffers = _param(sys_root, "max_buffers")
    if buffers and buffers[0].isdigit() and int(buffers[0]) < 2:
        findings.append(Finding("v4l2loopback", WARN, f"max_buffers={buffers[0]}: consumers may stutter",
                                _on_host("reload the module with max_buffers=2 (the default)", in_container)))
    return findings


def check_loopback(device: str, *, sys_root: Path = SYS, in_container: bool = False) -> list[Finding]:
    """The module is loaded, with exclusive_caps=1 for `device`, and the node exists."""
    if not v4l2_module.loaded(sys_root):
        return [Finding("v4l2loopback", FAIL, "the kernel module is not loaded, so there is no virtual camera",
                        _on_host(f"sudo apt install v4l2loopback-dkms, then {modprobe_line(device)}", in_container))]
    findings = []
    number = "".join(ch for ch in Path(device).name if ch.isdigit())
    video_nr = _param(sys_root, "video_nr") or []
    exclusive = _param(sys_root, "exclusive_caps")
    index = video_nr.index(number) if number and number in video_nr else 0
    if exclusive is None:
        findings.append(Finding("v4l2loopback", WARN, "loaded; exclusive_caps cannot be read (old module?)",
                                "make sure it was loaded with exclusive_caps=1, or Chrome will not list the camera"))
    elif index < len(exclusive) and exclusive[index].upper() in ("Y", "1"):
        findings.append(Finding("v4l2loopback", OK, f"loaded, exclusive_caps=1 for {device}"))
    else:
        findings.append(Finding(
            "v4l2loopback", FAIL, f"loaded with exclusive_caps=0 for {device}: Chrome, Meet and Zoom in the "
            f"browser will not list the camera",
            _on_host(f"sudo modprobe -r v4l2loopback && {modprobe_line(device)}", in_container)))
    findings += check_module_version(sys_root=sys_root, in_container=in_container)
    sys_node = sys_root / "class" / "video4linux" / Path(device).name
    if not os.path.exists(device):
        names = sorted(p.name for p in (sys_root / "class" / "video4linux").glob("video*"))
        findings.append(Finding("device", FAIL, f"{device} does not exist (video devices: {', '.join(names) or 'none'})",
                                f"give --device /dev/videoN of the loopback device, or reload the module: "
                                f"sudo modprobe -r v4l2loopback && {modprobe_line(device)}"))
    elif sys_node.is_dir():
        try:
            label = (sys_node / "name").read_text().strip()
            findings.append(Finding("device", INFO, f"{device} is called {label!r} in apps"))
        except OSError:
            pass
    return findings


# -- 2. the device -------------------------------------------------------------------------------

def check_device(device: str, *, in_container: bool = False) -> list[Finding]:
    """We may open the device, and it is a v4l2loopback output (the output's own check)."""
    from .outputs.v4l2 import open_loopback

    if not os.path.exists(device):
        return []   # reported by check_loopback
    st = os.stat(device)
    if not os.access(device, os.W_OK):
        try:
            group = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            group = str(st.st_gid)
        member = st.st_gid in os.getgroups()
        fix = (f"let the image's entrypoint start as root (no `user:`/--user), it joins the group of the device "
               f"nodes; or docker run --group-add $(stat -c %g {device})" if in_container
               else "log out and in again (the group change is not active yet)" if member
               else f"sudo usermod -aG {group} $USER, then log out and in")
        return [Finding("permissions", FAIL, f"cannot write {device} (owned by group {group!r}, mode "
                                             f"{stat.filemode(st.st_mode)})", fix)]
    findings = [Finding("permissions", OK, f"{device} is writable")]
    if not stat.S_ISCHR(st.st_mode):
        findings.append(Finding("device", WARN, f"{device} is not a character device (a test fake?)"))
    try:
        fd = open_loopback(device)
    except OutputError as exc:
        findings.append(Finding("device", FAIL, str(exc).split(": ", 1)[0],
                                str(exc).split(": ", 1)[1] if ": " in str(exc) else ""))
    else:
        os.close(fd)
        findings.append(Finding("device", OK, f"{device} is a v4l2loopback output nobody else writes to"))
    return findings


# -- 3. the camera -------------------------------------------------------------------------------

class _FmtDesc(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("description", ctypes.c_char * 32), ("pixelformat", ctypes.c_uint32),
                ("mbus_code", ctypes.c_uint32), ("reserved", ctypes.c_uint32 * 3)]


class _FrmSizeEnum(ctypes.Structure):
    _fields_ = [("index", ctypes.c_uint32), ("pixel_format", ctypes.c_uint32), ("type", ctypes.c_uint32),
                ("size", ctypes.c_uint32 * 6), ("reserved", ctypes.c_uint32 * 2)]


class _Capability(ctypes.Structure):
    _fields_ = [("driver", ctypes.c_char * 16), ("card", ctypes.c_char * 32), ("bus_info", ctypes.c_char * 32),
                ("version", ctypes.c_uint32), ("capabilities", ctypes.c_uint32), ("device_caps", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32 * 3)]


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


VIDIOC_QUERYCAP = (2 << 30) | (ctypes.sizeof(_Capability) << 16) | (ord("V") << 8) | 0
VIDIOC_ENUM_FMT = _iowr(2, ctypes.sizeof(_FmtDesc))
VIDIOC_ENUM_FRAMESIZES = _iowr(74, ctypes.sizeof(_FrmSizeEnum))


def _fourcc(value: int) -> str:
    return "".join(chr((value >> (8 * i)) & 0xFF) for i in range(4)).strip()


def camera_formats(fd: int) -> dict[str, tuple[int, int]]:
    """Capture formats of an open camera: fourcc -> the largest frame size it offers ((0, 0): any)."""
    formats: dict[str, tuple[int, int]] = {}
    for index in range(64):
        desc = _FmtDesc(index=index, type=_BUF_TYPE_VIDEO_CAPTURE)
        try:
            fcntl.ioctl(fd, VIDIOC_ENUM_FMT, desc)
        except OSError:
            break
        best = (0, 0)
        for size_index in range(256):
            size = _FrmSizeEnum(index=size_index, pixel_format=desc.pixelformat)
            try:
                fcntl.ioctl(fd, VIDIOC_ENUM_FRAMESIZES, size)
            except OSError:
                break
            # discrete: (width, height); stepwise/continuous: (min_w, max_w, step_w, min_h, max_h, step_h)
            wh = (size.size[0], size.size[1]) if size.type == _FRMSIZE_TYPE_DISCRETE else (size.size[1], size.size[4])
            best = max(best, wh, key=lambda s: s[0] * s[1])
            if size.type != _FRMSIZE_TYPE_DISCRETE:
                break
        formats[_fourcc(desc.pixelformat)] = best
    return formats


def check_camera(source: str, *, device: str, width: int, height: int) -> list[Finding]:
    """The camera opens, captures, and offers MJPG at the configured size."""
    cameras = [c for c in list_cameras() if os.path.realpath(c) != os.path.realpath(device)]
    if source.isdigit():
        source = f"/dev/video{source}"
    if not (source.startswith("/dev/") or re.fullmatch(r"video\d+", Path(source).name)):
        what = "no camera found, the built-in demo is used" if source == "demo" and not cameras else f"source is {source}"
        return [Finding("camera", INFO, f"{what} (cameras here: {', '.join(cameras) or 'none'})")]
    try:
        fd = os.open(source, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return [Finding("camera", FAIL, f"{source} does not exist (cameras here: {', '.join(cameras) or 'none'})",
                        "plug the camera in, or pick one with --source (or --source demo)")]
    except PermissionError:
        return [Finding("camera", FAIL, f"permission denied opening {source}",
                        "sudo usermod -aG video $USER, then log out and in")]
    except OSError as exc:
        return [Finding("camera", FAIL, f"cannot open {source} ({exc.strerror})",
                        "close other apps using it, or pick another camera with --source")]
    try:
        cap = _Capability()
        try:
            fcntl.ioctl(fd, VIDIOC_QUERYCAP, cap)
        except OSError as exc:
            return [Finding("camera", FAIL, f"{source} is not a V4L2 device ({errno.errorcode.get(exc.errno, exc)})",
                            f"pick a camera with --source (cameras here: {', '.join(cameras) or 'none'})")]
        caps = cap.device_caps if cap.capabilities & _CAP_DEVICE_CAPS else cap.capabilities
        card = cap.card.decode("utf-8", "replace")
        if not caps & _CAP_VIDEO_CAPTURE:
            return [Finding("camera", FAIL, f"{source} ({card}) cannot capture",
                            f"pick the camera's capture node with --source (cameras here: {', '.join(cameras)})")]
        formats = camera_formats(fd)
    finally:
        os.close(fd)
    listed = ", ".join(f"{k} {w}x{h}" if w else k for k, (w, h) in formats.items()) or "none listed"
    mjpg = formats.get("MJPG")
    if mjpg is None:
        return [Finding("camera", WARN, f"{source} ({card}) offers no MJPG ({listed}): raw frames at "
                                        f"{width}x{height} may be slow or low-rate",
                        f"try --width 640 --height 480, or another camera")]
    if mjpg[0] and (mjpg[0] < width or mjpg[1] < height):
        return [Finding("camera", WARN, f"{source} ({card}) gives MJPG up to {mjpg[0]}x{mjpg[1]}, less than "
                                        f"{width}x{height}", f"run with --width {mjpg[0]} --height {mjpg[1]}")]
    return [Finding("camera", OK, f"{source} ({card}): {listed}")]


# -- 4. weights ------------------------------------------------------------------------------------

def check_weights(*, local_segmenter: bool) -> list[Finding]:
    """The default model's weights are in the cache (where a segmenter package is installed)."""
    try:
        from segmenter.model import DEFAULT_MODEL
        from segmenter.weights import WeightsError, weights_path
    except ImportError:
        if local_segmenter:
            return [Finding("weights", FAIL, "--with-segmenter, but the segmenter package is not installed here",
                            "pip install 'holocam[segmenter]' (torch first: pip install torch==2.13.0), "
                            "or run segmenters elsewhere and drop --with-segmenter")]
        return [Finding("weights", INFO, "no segmenter package here (the sink image has none): the segmenters "
                                         "check their own weights (`python -m segmenter weights`)")]
    try:
        path = weights_path(DEFAULT_MODEL)
    except WeightsError as exc:
        message, _, fix = str(exc).partition(": ")
        return [Finding("weights", FAIL if local_segmenter else WARN, message, fix)]
    return [Finding("weights", OK, f"{DEFAULT_MODEL}: {path}")]


# -- 5. segmenters ---------------------------------------------------------------------------------

def _first_answer(sock, timeout_s: float):
    """The first protocol message any replica sends on `sock` within `timeout_s`, or None."""
    from shared import protocol

    deadline = time.monotonic() + timeout_s
    poller_socket = sock.socket
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if not poller_socket.poll(int(remaining * 1000) + 1):
            continue
        got = sock.recv()
        if got is None:
            continue
        _, parts = got
        try:
            return protocol.decode(parts[0]) if parts else None
        except protocol.ProtocolError as exc:
            return exc


def _describe(message) -> str:
    from shared.protocol import Heartbeat, Hello

    if isinstance(message, Hello):
        return f"{message.model} {message.width}x{message.height} from replica {message.replica_id}"
    if isinstance(message, Heartbeat):
        return "a replica busy with another sink answered (heartbeat)"
    return type(message).__name__


def check_segmenters(config: SinkConfig, *, timeout_s: float) -> list[Finding]:
    """Each --segmenter endpoint says hello; replicas connect to the --bind endpoints."""
    from shared.protocol import ProtocolError
    from shared.errors import TransportError
    from shared.keys import sink_keys
    from shared.transport import SinkSocket

    compose = config.compose_network
    findings = []
    try:
        curve = sink_keys(config.curve_dir) if config.curve_dir else None
    except TransportError as exc:
        return [Finding("segmenter", FAIL, f"CurveZMQ keys: {exc}")]
    for endpoint in config.segmenters:
        try:
            with SinkSocket(bind=[], connect=[endpoint], curve=curve, insecure=config.insecure,
                            compose_network=compose) as sock:
                answer = _first_answer(sock, timeout_s)
        except TransportError as exc:
            findings.append(Finding("segmenter", FAIL, f"{endpoint}: {exc}"))
            continue
        if answer is None:
            findings.append(Finding("segmenter", FAIL, f"no answer from {endpoint} within {timeout_s:g} s",
                                    f"start `python -m segmenter serve --bind tcp://*:{endpoint.rsplit(':', 1)[-1]}` "
                                    f"there; check the host, port and firewall; with keys give both sides --curve-dir"))
        elif isinstance(answer, ProtocolError):
            findings.append(Finding("segmenter", FAIL, f"{endpoint} answered off-protocol ({answer})",
                                    "run the same holocam version on the sink and the segmenters"))
        else:
            findings.append(Finding("segmenter", OK, f"{endpoint}: {_describe(answer)}"))
    if config.with_segmenter or not config.bind:
        return findings
    try:
        with SinkSocket(bind=config.bind, connect=[], curve=curve, insecure=config.insecure,
                        compose_network=compose) as sock:
            answer = _first_answer(sock, timeout_s)
    except TransportError as exc:
        if "in use" in str(exc):
            findings.append(Finding("segmenter", INFO, f"{', '.join(config.bind)} is taken: a sink is running "
                                                       f"already (its log shows its replicas)"))
        else:
            findings.append(Finding("segmenter", FAIL, str(exc)))
        return findings
    if answer is None or isinstance(answer, ProtocolError):
        findings.append(Finding(
            "segmenter", WARN if config.segmenters else FAIL,
            f"no segmenter connected to {', '.join(config.bind)} within {timeout_s:g} s",
            f"start one: python -m segmenter serve --connect {config.bind[0].replace('*', '127.0.0.1')}, "
            f"or run the sink with --with-segmenter"))
    else:
        findings.append(Finding("segmenter", OK, f"{', '.join(config.bind)}: {_describe(answer)}"))
    return findings


# -- 6. web page -----------------------------------------------------------------------------------

def check_firefox(*, home: Path | None = None, root: Path = Path("/")) -> list[Finding]:
    """Firefox profiles whose PipeWire camera backend hides the v4l2loopback camera."""
    from .firefox_prefs import PREF, camera_settings

    home = Path.home() if home is None else home
    findings = []
    for setting in camera_settings(home, root):
        if setting.enabled:
            findings.append(Finding(
                "firefox", WARN, f"profile {setting.profile.name} uses PipeWire for cameras ({PREF}=true in "
                f"{setting.source}), so Firefox will not list the holocam camera",
                f"in Firefox open about:config, set {PREF} to false and restart Firefox "
                f"(or add user_pref(\"{PREF}\", false); to {setting.profile / 'user.js'})"))
    return findings


def check_service(*, environ=None) -> list[Finding]:
    """Whether the systemd user unit (install-service) is installed, enabled and running."""
    from . import service

    st = service.state(environ=os.environ if environ is None else environ)
    if not st.installed:
        return [Finding("autostart", INFO, "holocam does not start at login",
                        "python -m capture_sink install-service, then " + service.enable_hint().split("   ")[0])]
    enabled = "enabled" if st.enabled else "not enabled"
    if st.active is None:
        return [Finding("autostart", INFO if st.enabled else WARN,
                        f"{st.path} is installed and {enabled}; systemd cannot be asked whether it runs "
                        f"(no user manager here)",
                        "" if st.enabled else service.enable_hint())]
    if st.active == "active":
        return [Finding("autostart", OK, f"{service.UNIT_NAME} is installed, {enabled} and running")]
    if st.active == "failed":
        return [Finding("autostart", WARN, f"{service.UNIT_NAME} is installed but failed",
                        f"journalctl --user -u {service.UNIT_NAME} -n 50 says why; then "
                        f"systemctl --user restart {service.UNIT_NAME}")]
    return [Finding("autostart", INFO if st.enabled else WARN, f"{service.UNIT_NAME} is installed, {enabled}, "
                    f"{st.active}", "" if st.enabled else service.enable_hint())]


def check_http_port(config: SinkConfig) -> list[Finding]:
    if not config.http or config.http_port == 0:
        return []
    with socket.socket(socket.AF_INET6 if ":" in config.http_host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((config.http_host, config.http_port))
        except OSError as exc:
            return [Finding("web page", WARN, f"{config.http_host}:{config.http_port} is taken ({exc.strerror}): "
                                              f"a sink is running already, or another program",
                            "stop it, or give --http-port another port")]
    return [Finding("web page", OK, f"http://{config.http_host}:{config.http_port}/ is free")]


# -- all -----------------------------------------------------------------------------------------------

def diagnose(config: SinkConfig, *, timeout_s: float = 3.0, want_camera_output: bool = True,
             sys_root: Path = SYS, in_container: bool | None = None) -> list[Finding]:
    """Every check, in order.

    Args:
        want_camera_output: check v4l2loopback even if `config.outputs` has no v4l2 (true unless
            the user chose the outputs: `auto` turns into null on a machine without the module).
    """
    from .viewers import running_in_container

    container = running_in_container() if in_container is None else in_container
    findings: list[Finding] = []
    if "v4l2" in config.outputs or want_camera_output:
        findings += check_loopback(config.device, sys_root=sys_root, in_container=container)
        findings += check_device(config.device, in_container=container)
        if not container:   # the browser's profile is on the host, not in the sink's container
            findings += check_firefox()
    else:
        findings.append(Finding("v4l2loopback", INFO, f"not checked: outputs are {', '.join(config.outputs)}"))
    findings += check_camera(config.source, device=config.device, width=config.width, height=config.height)
    findings += check_weights(local_segmenter=config.with_segmenter)
    findings += check_segmenters(config, timeout_s=timeout_s)
    findings += check_http_port(config)
    if not container:
        findings += check_service()
    return findings


def run_doctor(config: SinkConfig, *, timeout_s: float = 3.0, want_camera_output: bool = True,
               out: TextIO | None = None) -> int:
    """Print every finding; returns the exit status (1 if anything failed)."""
    out = sys.stdout if out is None else out
    print("holocam doctor", file=out)
    findings = diagnose(config, timeout_s=timeout_s, want_camera_output=want_camera_output)
    for finding in findings:
        for line in finding.lines():
            print(line, file=out)
    failed = sum(f.status == FAIL for f in findings)
    if failed:
        print(f"{failed} problem{'s' if failed > 1 else ''} found: fix {'them' if failed > 1 else 'it'} and run "
              f"`python -m capture_sink doctor` again", file=out)
        return 1
    print("no problems found", file=out)
    return 0
