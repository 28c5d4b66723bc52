"""Checks 6-7 and Firefox: the web page's port is free, the autostart unit runs, and no Firefox
profile uses PipeWire for cameras (which hides v4l2loopback cameras)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from capture_sink.config import SinkConfig

from .findings import INFO, OK, WARN, Finding


def check_firefox(*, home: Path | None = None, root: Path = Path("/")) -> list[Finding]:
    """Firefox profiles whose PipeWire camera backend hides the v4l2loopback camera."""
    from capture_sink.firefox_prefs import PREF, camera_settings

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
    from capture_sink import service

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
