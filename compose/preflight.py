#!/usr/bin/env python3
"""Checks .env and the host's devices before `docker compose up`, so mistakes read as one line
that names the fix instead of a Docker error. Standard library only (runs on the host's python3).
Nothing needs to be set: without .env the defaults are checked (webcam /dev/video0, loopback
/dev/video20); the web token is the sink's own unless HOLOCAM_HTTP_TOKEN overrides it, and the
container joins the devices' group itself.

    python3 compose/preflight.py [camera|preview|segmenter]    # exit 0 = fine; 2 = a problem, printed
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODPROBE = ('sudo modprobe v4l2loopback devices=1 video_nr=20 card_label="holocam" exclusive_caps=1')

# name -> (default, kind); kinds are checked by the functions below
SETTINGS = {
    "HOLOCAM_CAMERA": ("/dev/video0", "device"),
    "HOLOCAM_LOOPBACK": ("/dev/video20", "loopback"),
    "HOLOCAM_PREVIEW_PORT": ("8080", "port"),
    "HOLOCAM_SEGMENTER_THREADS": ("1", "threads"),
    "HOLOCAM_SEGMENTER_PORT": ("5556", "port"),
    "HOLOCAM_HTTP_TOKEN": ("", "token"),
    "HOLOCAM_V4L2_FORMAT": ("YUYV", "v4l2_format"),
}
# Settings of older .env files that are no longer needed: a note, not a failure.
RETIRED = {"HOLOCAM_VIDEO_GID": "the sink container now joins the group of its device nodes itself"}
NEEDED = {
    "camera": ["HOLOCAM_CAMERA", "HOLOCAM_LOOPBACK", "HOLOCAM_PREVIEW_PORT",
               "HOLOCAM_SEGMENTER_THREADS", "HOLOCAM_HTTP_TOKEN", "HOLOCAM_V4L2_FORMAT"],
    "preview": ["HOLOCAM_PREVIEW_PORT", "HOLOCAM_SEGMENTER_THREADS", "HOLOCAM_HTTP_TOKEN"],
    "segmenter": ["HOLOCAM_SEGMENTER_THREADS", "HOLOCAM_SEGMENTER_PORT"],
}


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"{path}:{number}: '{line}' is not NAME=value: fix or remove the line")
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def check(name: str, value: str, kind: str) -> str | None:
    if kind in ("device", "loopback"):
        path = Path(value)
        if not path.exists():
            if kind == "loopback":
                return f"{name}={value}: no such device: load v4l2loopback on this host: {MODPROBE}"
            return (f"{name}={value}: no such camera: plug it in, set {name} in .env to one of "
                    f"{', '.join(sorted(map(str, Path('/dev').glob('video*')))) or 'no /dev/video* here'}, "
                    f"or run the preview variant (make up-preview)")
        if not stat.S_ISCHR(path.stat().st_mode):
            return f"{name}={value} is not a device: set it to a /dev/videoN path in .env"
        return None
    if kind == "v4l2_format":
        if value not in ("YUYV", "I420"):
            return f"{name}={value!r}: use YUYV (default, every app takes it) or I420"
        return None
    if kind == "port":
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            return f"{name}={value!r} must be a port number from 1 to 65535"
        return None
    if kind == "token":
        if value and len(value) < 16:   # empty: the sink generates and keeps its own
            return (f"{name} is too short: remove it from .env (the sink makes its own), or use 16+ characters: "
                    f"python3 -c \"import secrets; print(secrets.token_urlsafe(24))\"")
        return None
    if kind == "threads":
        if not value.isdigit() or not 1 <= int(value) <= 64:
            return f"{name}={value!r} must be a whole number of threads from 1 to 64"
        return None
    return None


def main(argv: list[str]) -> int:
    variant = argv[0] if argv else "camera"
    if variant not in NEEDED:
        print(f"preflight: unknown variant {variant!r}: use camera, preview or segmenter", file=sys.stderr)
        return 2
    try:
        values = read_env_file(ROOT / ".env")
    except ValueError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return 2
    values.update({k: v for k, v in os.environ.items() if k in SETTINGS})  # the shell wins, as in compose
    unknown = [k for k in values if k.startswith("HOLOCAM_") and k not in SETTINGS and k not in RETIRED
               and k not in ("HOLOCAM_TORCH_INDEX_URL", "HOLOCAM_SOURCE", "HOLOCAM_KEYS", "HOLOCAM_UID",
                             "HOLOCAM_SEGMENTER_DEVICE", "HOLOCAM_TORCH_CUDA_INDEX_URL")]
    problems = [f".env: unknown setting {k}: see .env.example for the names" for k in unknown]
    for name in RETIRED:
        if name in values:
            print(f"preflight: note: {name} is no longer used ({RETIRED[name]}): remove it from .env",
                  file=sys.stderr)
    for name in NEEDED[variant]:
        default, kind = SETTINGS[name]
        problem = check(name, values.get(name, default), kind)
        if problem:
            problems.append(problem)
    for problem in problems:
        print(f"preflight: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
