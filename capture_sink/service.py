"""Start holocam at login: a systemd *user* unit (no root), written and removed by the sink's CLI.

    python -m capture_sink install-service [-- RUN OPTIONS...]   # e.g. -- --effect none
    python -m capture_sink uninstall-service

The unit runs `python -m capture_sink run --with-segmenter` (the sink and its local segmenter)
with this Python, after the graphical session has started (the session is what gives the user
the camera: logind's uaccess ACL), restarts it when it fails, and stops it at logout. Settings
belong in $XDG_CONFIG_HOME/holocam/sink.toml, which the sink reads anyway: the unit holds no
secrets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

UNIT_NAME = "holocam.service"
TARGET = "graphical-session.target"
RESTART_SEC = 3
# Give up after this many failed starts within the interval (then `systemctl --user status` says why).
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_S = 120


class ServiceError(RuntimeError):
    """A one-line problem with the user unit, naming the fix."""


def unit_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/systemd/user, where systemd looks for a user's own units."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def unit_path(environ: Mapping[str, str] = os.environ) -> Path:
    return unit_dir(environ) / UNIT_NAME


def _quote(arg: str) -> str:
    # systemd splits ExecStart like a shell with "..." quoting, and expands % specifiers.
    arg = arg.replace("%", "%%")
    if arg and not any(ch in arg for ch in ' \t"\'\\;$'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(run_args: Sequence[str] = (), *, python: str = sys.executable,
                environ: Mapping[str, str] = os.environ) -> str:
    """The unit file's text for `python -m capture_sink run --with-segmenter RUN_ARGS`."""
    command = [python, "-m", "capture_sink", "run", "--with-segmenter", *run_args]
    lines = [
        "# Written by `python -m capture_sink install-service`; remove with `uninstall-service`.",
        "[Unit]",
        "Description=holocam virtual webcam (sink and its local segmenter)",
        f"After={TARGET}",
        f"PartOf={TARGET}",
        f"StartLimitIntervalSec={START_LIMIT_INTERVAL_S}",
        f"StartLimitBurst={START_LIMIT_BURST}",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_quote(a) for a in command),
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "# Private by default: what holocam writes (token, uploads) is readable by this user only.",
        "UMask=0077",
        "NoNewPrivileges=yes",
    ]
    if environ.get("PYTHONPATH"):   # running from a checkout: keep importing that copy
        lines.append("Environment=" + _quote("PYTHONPATH=" + environ["PYTHONPATH"]))
    lines += ["", "[Install]", f"WantedBy={TARGET}", ""]
    return "\n".join(lines)


def enable_hint() -> str:
    return (f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
            f"   (logs: journalctl --user -u {UNIT_NAME} -f)")


def install(run_args: Sequence[str] = (), *, environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """Write the unit; returns (path, whether an older unit was replaced)."""
    if any(a in ("--help", "-h") for a in run_args):
        raise ServiceError("give the sink's run options after --, e.g. install-service -- --effect none")
    path = unit_path(environ)
    replaced = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_unit(run_args, environ=environ))
    except OSError as exc:
        raise ServiceError(f"cannot write {path} ({exc.strerror}): check that {path.parent} is yours") from None
    return path, replaced


def _systemctl(*args: str) -> subprocess.CompletedProcess | None:
    """`systemctl --user ARGS`, or None where there is no systemctl or no user manager to ask."""
    if shutil.which("systemctl") is None:
        return None
    try:
        done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if "Failed to connect to bus" in done.stderr or "No medium found" in done.stderr:
        return None
    return done


def uninstall(*, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Stop and disable the unit where systemd can be asked, then remove it; None if none was installed."""
    path = unit_path(environ)
    if not path.exists():
        return None
    _systemctl("disable", "--now", UNIT_NAME)
    # Where no user manager runs (or it did not answer), remove what `enable` made by hand.
    (unit_dir(environ) / f"{TARGET}.wants" / UNIT_NAME).unlink(missing_ok=True)
    path.unlink()
    _systemctl("daemon-reload")
    return path


@dataclass(frozen=True)
class ServiceState:
    installed: bool
    enabled: bool
    active: str | None   # "active", "inactive", "failed", ...; None if systemd could not be asked
    path: Path


def state(*, environ: Mapping[str, str] = os.environ) -> ServiceState:
    path = unit_path(environ)
    enabled = (unit_dir(environ) / f"{TARGET}.wants" / UNIT_NAME).exists()
    active = None
    if path.exists():
        done = _systemctl("is-active", UNIT_NAME)
        active = (done.stdout.strip() or None) if done is not None else None
    return ServiceState(path.exists(), enabled, active, path)


def main_install(run_args: Sequence[str]) -> int:
    path, replaced = install(run_args)
    print(f"{'updated' if replaced else 'wrote'} {path}")
    print(f"start holocam now and at every login: {enable_hint()}")
    return 0


def main_uninstall() -> int:
    path = uninstall()
    if path is None:
        print(f"nothing to remove: {unit_path()} does not exist")
        return 0
    print(f"removed {path} (and stopped and disabled it where systemd could be asked)")
    return 0
