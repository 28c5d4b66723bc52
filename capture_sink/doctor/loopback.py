"""Checks 1-2: the v4l2loopback module (loaded, exclusive_caps, a release without known breakage)
and the device node (we may write it, and it is a loopback output nobody else writes to)."""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from capture_sink.outputs import v4l2_module
from capture_sink.outputs.errors import OutputError
from capture_sink.outputs.v4l2_module import modprobe_line

from .findings import FAIL, INFO, OK, SYS, WARN, Finding, on_host

# -- 1. v4l2loopback ------------------------------------------------------------------------------

def _param(sys_root: Path, name: str) -> list[str] | None:
    return v4l2_module.module_param(sys_root, name)


def check_module_version(*, sys_root: Path = SYS, in_container: bool = False) -> list[Finding]:
    """The loaded release (/sys/module/v4l2loopback/version) and what is known to break in it."""
    found = v4l2_module.module_version(sys_root)
    if found is None:
        return [Finding("v4l2loopback version", WARN, "the module does not say its version (a very old release?)",
                        on_host("upgrade v4l2loopback to 0.13.2 or newer", in_container))]
    text, version = found
    if version is None:
        return [Finding("v4l2loopback version", INFO, f"{text!r} (not a release number; not checked)")]
    issues = v4l2_module.issues_for(version)
    findings = [Finding("v4l2loopback version", OK if not any(i.severity == WARN for i in issues) else INFO, text)]
    for issue in issues:
        findings.append(Finding("v4l2loopback version", issue.severity, f"{text}: {issue.problem}",
                                on_host(issue.fix, in_container) if issue.severity == WARN else issue.fix))
    buffers = _param(sys_root, "max_buffers")
    if buffers and buffers[0].isdigit() and int(buffers[0]) < 2:
        findings.append(Finding("v4l2loopback", WARN, f"max_buffers={buffers[0]}: consumers may stutter",
                                on_host("reload the module with max_buffers=2 (the default)", in_container)))
    return findings


def check_loopback(device: str, *, sys_root: Path = SYS, in_container: bool = False) -> list[Finding]:
    """The module is loaded, with exclusive_caps=1 for `device`, and the node exists."""
    if not v4l2_module.loaded(sys_root):
        return [Finding("v4l2loopback", FAIL, "the kernel module is not loaded, so there is no virtual camera",
                        on_host(f"sudo apt install v4l2loopback-dkms, then {modprobe_line(device)}", in_container))]
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
            on_host(f"sudo modprobe -r v4l2loopback && {modprobe_line(device)}", in_container)))
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
    from capture_sink.outputs.v4l2_device import open_loopback

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
