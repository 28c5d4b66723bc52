"""holocam capture_sink: camera in, segmenter masks over ZeroMQ, effect + background, virtual camera out.

    python -m capture_sink run --with-segmenter                 # all on this machine (make run)
    python -m capture_sink run --source /dev/video0 --output v4l2 --device /dev/video20
    python -m capture_sink run --segmenter tcp://gpu-box:5556   # a segmenter on another machine
    python -m capture_sink run --source demo                    # preview: the URL with ?token= in the log

    python -m capture_sink doctor                               # check loopback, camera, weights, segmenters
    python -m capture_sink install-service                      # start at login (systemd user unit)

Settings come from flags > HOLOCAM_<FIELD> environment variables (e.g. HOLOCAM_SOURCE=demo) >
the config file (--config PATH, else $XDG_CONFIG_HOME/holocam/sink.toml if present) > defaults;
`run --print-config` prints the result (see capture_sink/settings_file.py). The web page with
the live preview and the controls is at http://127.0.0.1:8080/ (capture_sink/web/API.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from typing import Callable

from shared.cli import run_command
from shared.protocol import FRAME_ENCODINGS

from .config import NO_MASK_MODES, PACING_POLICIES, SEGMENTING_MODES, V4L2_FORMATS, SinkConfig

logger = logging.getLogger("capture_sink")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line naming the fix, like a bad HOLOCAM_* variable (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message}: see {self.prog} --help\n")


def _typed(kind: type) -> Callable[[str], object]:
    """An argparse type whose error reads like the one for the same bad HOLOCAM_* value."""
    def parse(text: str) -> object:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command line. Defaults here are SinkConfig's: HOLOCAM_* variables are layered (and
    checked, with a one-line error) by settings_file.load_config, never converted here."""
    d = SinkConfig()
    parser = _Parser(prog="python -m capture_sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the sink")
    src = run.add_argument_group("input")
    src.add_argument("--source", default=d.source,
                     help="auto (first camera, else demo), demo, /dev/videoN, a camera index, a video or image file")
    src.add_argument("--width", type=_typed(int), default=d.width)
    src.add_argument("--height", type=_typed(int), default=d.height)
    src.add_argument("--fps", type=_typed(float), default=d.fps)
    seg = run.add_argument_group("segmenters")
    seg.add_argument("--bind", action="append", default=None,
                     help=f"where replicas connect (repeatable; default {d.bind[0]})")
    seg.add_argument("--segmenter", action="append", default=[], dest="segmenters",
                     help="a replica that binds, e.g. tcp://gpu-box:5556 (repeatable)")
    seg.add_argument("--with-segmenter", action="store_true", default=False,
                     help="also start one local segmenter process (what `make run` does)")
    seg.add_argument("--segmenter-threads", type=_typed(int), default=d.segmenter_threads)
    seg.add_argument("--no-motion-skip", dest="motion_skip", action="store_false", default=None,
                     help="segment every frame, even when nothing moved (default: reuse the mask)")
    seg.add_argument("--encoding", choices=FRAME_ENCODINGS, default=d.encoding,
                     help="frame encoding on the wire (jpeg for slow links)")
    seg.add_argument("--insecure", action="store_true", default=None,
                     help="allow plain TCP beyond loopback (logs a warning)")
    seg.add_argument("--curve-dir", help="CurveZMQ keys from `make keys` (sink.key_secret + authorized/): "
                                         "encrypts frames and admits only listed segmenters")
    look = run.add_argument_group("look")
    look.add_argument("--effect", default=d.effect, help="hologram or none")
    look.add_argument("--background", default=d.background,
                      help="default, an image or video file, blur, green, none, or a colour (#rrggbb)")
    look.add_argument("--preset", default=d.preset, help="mask refinement preset (e.g. default, seed)")
    out = run.add_argument_group("output")
    out.add_argument("--output", action="append", default=None, dest="outputs",
                     help="auto, v4l2, file, window, null (repeatable; default auto: v4l2 if the "
                          "device exists; the web page shows the preview)")
    out.add_argument("--device", default=d.device, help="v4l2loopback device")
    out.add_argument("--v4l2-backend", default=d.v4l2_backend,
                     help="pyvirtualcam, pyfakewebcam or fcntl")
    out.add_argument("--v4l2-format", choices=V4L2_FORMATS, default=d.v4l2_format,
                     help="pixel format of the virtual camera (default YUYV: browsers via PipeWire and "
                          "the Flatpak portal need it)")
    out.add_argument("--file", dest="file_path", default=d.file_path, help="file output path")
    pace = run.add_argument_group("pacing")
    pace.add_argument("--pacing", choices=PACING_POLICIES, default=d.pacing,
                      help="wait: a frame waits up to --mask-budget-ms for its own mask; latest: never waits")
    pace.add_argument("--mask-budget-ms", type=_typed(float), default=d.mask_budget_ms)
    pace.add_argument("--max-mask-age-ms", type=_typed(float), default=None,
                      help=f"a mask older than this is not used: the person is hidden (default {d.max_mask_age_ms:.0f})")
    pace.add_argument("--no-mask", choices=NO_MASK_MODES, default=None,
                      help="without a valid mask show: hide (the background alone, default), blur (the whole "
                           "picture, unreadable) or camera (the raw camera: your room shows)")
    run.add_argument("--health-file", help="file the frame loop touches every second (container healthcheck)")
    run.add_argument("--max-frames", type=_typed(int), default=None, help="stop after this many frames (tests)")
    live = run.add_argument_group("web page, API and on-demand segmenting")
    live.add_argument("--http-host", help="web page address (default 127.0.0.1)")
    live.add_argument("--http-port", type=_typed(int), help="web page port (default 8080; 0 picks a free one)")
    live.add_argument("--http-token", help="secret every web request must carry (default: made on the first "
                                           "start, kept in --http-token-file); prefer HOLOCAM_HTTP_TOKEN or "
                                           "the config file (flags show in `ps`)")
    live.add_argument("--http-token-file", help="where the made token is kept (default "
                                                "$XDG_CONFIG_HOME/holocam/http_token, mode 0600)")
    live.add_argument("--no-http-auth", dest="http_auth", action="store_false", default=None,
                      help="serve the page without a token (loopback only; every local user and program "
                           "can then watch the webcam)")
    live.add_argument("--no-http", dest="http", action="store_false", default=None, help="no web page or API")
    live.add_argument("--upload-dir", help="folder for uploaded backgrounds (default $XDG_DATA_HOME/holocam/backgrounds)")
    live.add_argument("--background-dir", action="append", dest="background_dirs", default=None,
                      help="a folder whose pictures and videos the web page may use as backgrounds (repeatable; "
                           "else only uploads)")
    live.add_argument("--segmenting", choices=SEGMENTING_MODES, dest="segmenting_mode",
                      help="auto: segment only while an app or the web preview watches (default); on; off")
    _add_config_arguments(run)
    run.add_argument("--print-config", action="store_true", help="print the effective configuration (TOML) and exit")
    doctor = sub.add_parser("doctor", help="check v4l2loopback, permissions, camera, weights, segmenters")
    doctor.add_argument("--source", help="camera to check (default: the configured source)")
    doctor.add_argument("--device", help="v4l2loopback device to check")
    doctor.add_argument("--segmenter", action="append", dest="segmenters", default=None,
                        help="a replica that binds, to check it answers (repeatable)")
    doctor.add_argument("--bind", action="append", default=None, help="where replicas connect to the sink")
    doctor.add_argument("--timeout", type=_typed(float), default=3.0, help="seconds to wait for each segmenter's hello")
    _add_config_arguments(doctor)
    install = sub.add_parser("install-service", help="start holocam at login (a systemd user unit; no root)")
    install.add_argument("run_args", nargs=argparse.REMAINDER,
                         help="options for `run` after --, e.g. install-service -- --effect none")
    sub.add_parser("uninstall-service", help="stop, disable and remove the systemd user unit")
    return parser


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="TOML config file (default $XDG_CONFIG_HOME/holocam/sink.toml if it exists)")


def load_from_args(args: argparse.Namespace):
    """flags > HOLOCAM_* environment > config file > defaults (capture_sink.settings_file).

    `args.explicit` holds only the flags written on the command line (`main` sets it), so a
    parser default never hides a HOLOCAM_* variable; the environment is read in settings_file.
    """
    from .settings_file import load_config

    return load_config(args.explicit, os.environ, getattr(args, "config", None))


def start_local_segmenter(config: SinkConfig) -> subprocess.Popen:
    endpoint = config.bind[0].replace("*", "127.0.0.1").replace("0.0.0.0", "127.0.0.1")
    cmd = [sys.executable, "-m", "segmenter", "serve", "--connect", endpoint,
           "--threads", str(config.segmenter_threads)]
    if config.curve_dir:
        cmd += ["--curve-dir", config.curve_dir]
    logger.info("starting a local segmenter: %s", " ".join(cmd[1:]))
    return subprocess.Popen(cmd)


def run(args: argparse.Namespace) -> int:
    from .app import SinkApp

    loaded = load_from_args(args)
    if getattr(args, "print_config", False):
        from .settings_file import format_config
        sys.stdout.write(format_config(loaded))
        return 0
    config = loaded.config
    segmenter = start_local_segmenter(config) if config.with_segmenter else None
    app = SinkApp(config)
    signal.signal(signal.SIGTERM, lambda *_: app.stop())
    try:
        app.start()
        app.run(max_frames=args.max_frames)
    finally:
        app.close()
        if segmenter is not None:
            segmenter.terminate()
            try:
                segmenter.wait(timeout=5)
            except subprocess.TimeoutExpired:
                segmenter.kill()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    from .errors import USER_ERRORS
    from .settings_file import explicit_flags
    args.explicit = explicit_flags(build_parser, argv)
    return run_command(lambda: _command(args), USER_ERRORS)


def _command(args: argparse.Namespace) -> int:
    if args.command in ("install-service", "uninstall-service"):
        from .service import main_install, main_uninstall
        if args.command == "uninstall-service":
            return main_uninstall()
        return main_install(args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args)
    if args.command == "doctor":
        from .doctor import run_doctor
        loaded = load_from_args(args)
        return run_doctor(loaded.config, timeout_s=args.timeout,
                          want_camera_output=loaded.sources.get("outputs") == "default")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
