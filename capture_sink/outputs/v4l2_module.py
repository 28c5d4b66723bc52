"""What the loaded v4l2loopback module is: its release and options (sysfs), and what is known to break.

The module publishes ``/sys/module/v4l2loopback/version`` (MODULE_VERSION: "0.15.4", or a git
description such as "0.13.2-12-gabc123" for snapshot builds) and one file per option under
``parameters/`` (arrays as "Y,N,N,..."). A container sees the host's module there too.

The known issues come from reading each release's v4l2loopback.c (tags v0.12.5 .. v0.15.4) and
the trackers (OBS issues 7078 and 11891, v4l2loopback issue 622).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SYS_ROOT = Path("/sys")

Version = tuple[int, int, int]


@dataclass(frozen=True)
class KnownIssue:
    """A release range [first, before) and what goes wrong there, with the fix."""

    first: Version
    before: Version
    severity: str   # "warn" (holocam users meet it) or "info" (other programs do)
    problem: str
    fix: str

    def applies(self, version: Version) -> bool:
        return self.first <= version < self.before


RELOAD = "sudo modprobe -r v4l2loopback, then load it again"

KNOWN_ISSUES = (
    KnownIssue(
        (0, 0, 0), (0, 12, 5), "warn",
        "this release predates the exclusive_caps fixes Chrome and the meeting apps rely on",
        "upgrade v4l2loopback (0.13.2 or newer: your distribution's v4l2loopback-dkms, or build it from source)",
    ),
    KnownIssue(
        # write() sets ready_for_output = 0 but never marks its opener a writer, so close() never
        # sets it back: with exclusive_caps=1 the device stays capture-only after the producer stops.
        (0, 12, 5), (0, 13, 0), "warn",
        "a producer that stops leaves the device capture-only (exclusive_caps=1), so a restarted holocam or "
        "OBS is refused until the module is reloaded; holocam undoes this when it stops cleanly, not after a crash",
        f"upgrade v4l2loopback to 0.13.2 or newer, or after a crash: {RELOAD}",
    ),
    KnownIssue(
        (0, 14, 0), (99, 0, 0), "info",
        "OBS Studio builds without obs-studio PR 11906 cannot start their virtual camera on 0.14 and newer "
        "(stricter V4L2 rules, v4l2loopback PR 611); holocam's writers follow those rules",
        "if you also use OBS's virtual camera, update OBS Studio",
    ),
)


def parse_version(text: str) -> Version | None:
    """ "0.15.4" / "v0.14.0-0-g60a0315" -> (0, 15, 4) / (0, 14, 0); None if no release number is in it."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def module_dir(sys_root: Path = SYS_ROOT) -> Path:
    return sys_root / "module" / "v4l2loopback"


def loaded(sys_root: Path = SYS_ROOT) -> bool:
    return module_dir(sys_root).is_dir()


def module_version(sys_root: Path = SYS_ROOT) -> tuple[str, Version | None] | None:
    """(text, parsed) of the loaded module's version, or None if the module (or the file) is absent."""
    try:
        text = (module_dir(sys_root) / "version").read_text().strip()
    except OSError:
        return None
    return text, parse_version(text)


def module_param(sys_root: Path, name: str) -> list[str] | None:
    """An option of the loaded module, split at commas (arrays), or None if it cannot be read."""
    try:
        text = (module_dir(sys_root) / "parameters" / name).read_text().strip()
    except OSError:
        return None
    return [v.strip() for v in text.split(",")]


def issues_for(version: Version) -> list[KnownIssue]:
    return [issue for issue in KNOWN_ISSUES if issue.applies(version)]


def keeps_capture_only_after_close(sys_root: Path = SYS_ROOT) -> bool:
    """Whether the loaded release is one whose write() producers leave the device capture-only (0.12.5-0.12.7)."""
    found = module_version(sys_root)
    return bool(found and found[1] and (0, 12, 5) <= found[1] < (0, 13, 0))


def modprobe_line(device: str) -> str:
    """The command that loads v4l2loopback with `device` (/dev/videoN) as holocam's camera."""
    match = re.search(r"video(\d+)$", device)
    number = match.group(1) if match else "20"
    return f'sudo modprobe v4l2loopback devices=1 video_nr={number} card_label="holocam" exclusive_caps=1'
