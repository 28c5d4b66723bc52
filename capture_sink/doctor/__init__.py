"""`python -m capture_sink doctor`: find what keeps holocam from working here, and say how to fix it.

Checks, in the order a user meets them:
1. v4l2loopback: the module is loaded (/sys/module/v4l2loopback) with exclusive_caps=1 for our
   device (Chrome and WebRTC apps list the camera only then), its release has no known breakage
   (capture_sink.outputs.v4l2_module), and the device node exists; Firefox profiles do not use
   PipeWire for cameras (capture_sink.firefox_prefs), which hides v4l2loopback cameras;
2. the device: we may open it (the `video` group), and QUERYCAP says it is a v4l2loopback output
   (`capture_sink.outputs.v4l2_device.open_loopback`, the same check the output makes);
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
The exit status is 1 if any check failed, else 0. Files: loopback.py (1-2), camera.py (3),
segmenters.py (4-5), host.py (6-7 and Firefox), findings.py (what a check returns).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from capture_sink.config import SinkConfig

from .camera import check_camera
from .findings import FAIL, INFO, OK, SYS, WARN, Finding
from .host import check_firefox, check_http_port, check_service
from .loopback import check_device, check_loopback, check_module_version
from .segmenters import check_segmenters, check_weights

__all__ = ["FAIL", "INFO", "OK", "WARN", "Finding", "check_camera", "check_device", "check_firefox",
           "check_http_port", "check_loopback", "check_module_version", "check_segmenters", "check_service",
           "check_weights", "diagnose", "run_doctor"]


def diagnose(config: SinkConfig, *, timeout_s: float = 3.0, want_camera_output: bool = True,
             sys_root: Path = SYS, in_container: bool | None = None) -> list[Finding]:
    """Every check, in order.

    Args:
        want_camera_output: check v4l2loopback even if `config.outputs` has no v4l2 (true unless
            the user chose the outputs: `auto` turns into null on a machine without the module).
    """
    from capture_sink.viewers import running_in_container

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
