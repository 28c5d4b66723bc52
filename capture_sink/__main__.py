"""holocam capture_sink: camera in, segmenter masks over ZeroMQ, effect + background, virtual camera out.

    python -m capture_sink run --with-segmenter                 # all on this machine (make run)
    python -m capture_sink run --source /dev/video0 --output v4l2 --device /dev/video20
    python -m capture_sink run --segmenter tcp://gpu-box:5556   # a segmenter on another machine
    python -m capture_sink run --source demo --output mjpeg     # preview at http://127.0.0.1:8080/

    python -m capture_sink doctor                               # check loopback, camera, weights, segmenters

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
import time

from .config import ENCODINGS, PACING_POLICIES, SEGMENTING_MODES, ConfigError, SinkConfig, validate

logger = logging.getLogger("capture_sink")


def _env(name: str, default):
    value = os.environ.get("HOLOCAM_" + name.upper().replace("-", "_"))
    return default if value is None else value


def build_parser() -> argparse.ArgumentParser:
    d = SinkConfig()
    parser = argparse.ArgumentParser(prog="python -m capture_sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the sink")
    src = run.add_argument_group("input")
    src.add_argument("--source", default=_env("source", d.source),
                     help="auto (first camera, else demo), demo, /dev/videoN, a camera index, a video or image file")
    src.add_argument("--width", type=int, default=int(_env("width", d.width)))
    src.add_argument("--height", type=int, default=int(_env("height", d.height)))
    src.add_argument("--fps", type=float, default=float(_env("fps", d.fps)))
    seg = run.add_argument_group("segmenters")
    seg.add_argument("--bind", action="append", default=None,
                     help=f"where replicas connect (repeatable; default {d.bind[0]})")
    seg.add_argument("--segmenter", action="append", default=[], dest="segmenters",
                     help="a replica that binds, e.g. tcp://gpu-box:5556 (repeatable)")
    seg.add_argument("--with-segmenter", action="store_true", default=bool(_env("with_segmenter", "")),
                     help="also start one local segmenter process (what `make run` does)")
    seg.add_argument("--segmenter-threads", type=int, default=int(_env("segmenter_threads", d.segmenter_threads)))
    seg.add_argument("--no-motion-skip", dest="motion_skip", action="store_false", default=None,
                     help="segment every frame, even when nothing moved (default: reuse the mask)")
    seg.add_argument("--encoding", choices=ENCODINGS, default=_env("encoding", d.encoding),
                     help="frame encoding on the wire (jpeg for slow links)")
    seg.add_argument("--insecure", action="store_true", default=None,
                     help="allow plain TCP beyond loopback (logs a warning)")
    seg.add_argument("--curve-dir", help="CurveZMQ keys from `make keys` (sink.key_secret + authorized/): "
                                         "encrypts frames and admits only listed segmenters")
    look = run.add_argument_group("look")
    look.add_argument("--effect", default=_env("effect", d.effect), help="hologram or none")
    look.add_argument("--background", default=_env("background", d.background),
                      help="default, an image or video file, blur, green, none, or a colour (#rrggbb)")
    look.add_argument("--preset", default=_env("preset", d.preset), help="mask refinement preset (e.g. default, seed)")
    out = run.add_argument_group("output")
    out.add_argument("--output", action="append", default=None, dest="outputs",
                     help="auto, v4l2, mjpeg, file, window, null (repeatable; default auto: v4l2 if the "
                          "device exists, and the MJPEG preview)")
    out.add_argument("--device", default=_env("device", d.device), help="v4l2loopback device")
    out.add_argument("--v4l2-backend", default=_env("v4l2_backend", d.v4l2_backend),
                     help="pyvirtualcam or pyfakewebcam")
    out.add_argument("--file", dest="file_path", default=_env("file", d.file_path), help="file output path")
    out.add_argument("--mjpeg-host", default=_env("mjpeg_host", d.mjpeg_host))
    out.add_argument("--mjpeg-port", type=int, default=int(_env("mjpeg_port", d.mjpeg_port)))
    pace = run.add_argument_group("pacing")
    pace.add_argument("--pacing", choices=PACING_POLICIES, default=_env("pacing", d.pacing),
                      help="wait: a frame waits up to --mask-budget-ms for its own mask; latest: never waits")
    pace.add_argument("--mask-budget-ms", type=float, default=float(_env("mask_budget_ms", d.mask_budget_ms)))
    run.add_argument("--health-file", help="file the frame loop touches every second (container healthcheck)")
    run.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (tests)")
    # -- live control (issue 8) --
    live = run.add_argument_group("web page, API and on-demand segmenting")
    live.add_argument("--http-host", help="web page address (default 127.0.0.1; any other needs a token)")
    live.add_argument("--http-port", type=int, help="web page port (default 8080; 0 picks a free one)")
    live.add_argument("--http-token", help="secret every web request must carry; prefer HOLOCAM_HTTP_TOKEN "
                                           "or the config file (flags show in `ps`)")
    live.add_argument("--no-http", dest="http", action="store_false", default=None, help="no web page or API")
    live.add_argument("--upload-dir", help="folder for uploaded backgrounds (default $XDG_DATA_HOME/holocam/backgrounds)")
    live.add_argument("--segmenting", choices=SEGMENTING_MODES,
                      help="auto: segment only while an app or the web preview watches (default); on; off")
    _add_config_arguments(run)
    run.add_argument("--print-config", action="store_true", help="print the effective configuration (TOML) and exit")
    doctor = sub.add_parser("doctor", help="check v4l2loopback, permissions, camera, weights, segmenters")
    doctor.add_argument("--source", help="camera to check (default: the configured source)")
    doctor.add_argument("--device", help="v4l2loopback device to check")
    doctor.add_argument("--segmenter", action="append", dest="segmenters", default=None,
                        help="a replica that binds, to check it answers (repeatable)")
    doctor.add_argument("--bind", action="append", default=None, help="where replicas connect to the sink")
    doctor.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each segmenter's hello")
    _add_config_arguments(doctor)
    # -- end live control --
    return parser


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="TOML config file (default $XDG_CONFIG_HOME/holocam/sink.toml if it exists)")


def load_from_args(args: argparse.Namespace):
    """flags > HOLOCAM_* environment > config file > defaults (capture_sink.settings_file)."""
    from .settings_file import load_config

    flags = getattr(args, "explicit", None)
    if flags is None:   # parsed without main(): every value counts as given
        flags = {k: v for k, v in vars(args).items() if v is not None}
    return load_config(flags, os.environ, getattr(args, "config", None))


def config_from_args(args: argparse.Namespace) -> SinkConfig:
    return load_from_args(args).config


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
    if getattr(args, "bind", None) is None and hasattr(args, "bind"):
        args.bind = [_env("bind", SinkConfig().bind[0])]
    if getattr(args, "outputs", None) is None and hasattr(args, "outputs"):
        args.outputs = _env("output", "auto").split(",")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    from .errors import USER_ERRORS
    from .settings_file import explicit_flags
    args.explicit = explicit_flags(build_parser, argv)
    try:
        if args.command == "doctor":
            from .doctor import run_doctor
            loaded = load_from_args(args)
            return run_doctor(loaded.config, timeout_s=args.timeout,
                              want_camera_output=loaded.sources.get("outputs") == "default")
        return run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
