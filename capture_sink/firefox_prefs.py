"""Does Firefox use PipeWire for cameras here? Then it lists no v4l2loopback camera (OBS issue 13873).

Firefox reads `media.webrtc.camera.allow-pipewire` from, lowest first: the defaults its package
ships (Fedora's build turns it on in defaults/pref/*.js), the profile's prefs.js (what
about:config writes), then the profile's user.js (the user's overrides, applied at every start).
Profiles live under ~/.mozilla/firefox (deb/rpm), ~/snap/firefox/common/.mozilla/firefox (Snap)
and ~/.var/app/org.mozilla.firefox/.mozilla/firefox (Flatpak).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PREF = "media.webrtc.camera.allow-pipewire"
PROFILE_ROOTS = (
    ".mozilla/firefox",
    "snap/firefox/common/.mozilla/firefox",
    ".var/app/org.mozilla.firefox/.mozilla/firefox",
)
# Where distributions put Firefox's default prefs (Fedora: /usr/lib64/firefox/defaults/pref/).
DEFAULT_PREF_GLOBS = (
    "usr/lib64/firefox/defaults/pref/*.js",
    "usr/lib/firefox/defaults/pref/*.js",
    "usr/lib64/firefox/browser/defaults/preferences/*.js",
    "usr/lib/firefox/browser/defaults/preferences/*.js",
    "usr/lib/firefox-esr/defaults/pref/*.js",
    "etc/firefox/pref/*.js",
)
_PREF_LINE = re.compile(r'^\s*(?:user_|lock)?pref\(\s*"' + re.escape(PREF) + r'"\s*,\s*(true|false)\s*\)', re.M)


@dataclass(frozen=True)
class ProfileSetting:
    """A profile whose effective value is `enabled`, and the file that decided it ("" = Firefox's default)."""

    profile: Path
    enabled: bool
    source: str


def _value_in(path: Path) -> bool | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    found = _PREF_LINE.findall(text)
    return found[-1] == "true" if found else None   # the last line wins, as in Firefox


def packaged_default(root: Path = Path("/")) -> tuple[bool, str] | None:
    """(value, file) if an installed Firefox package sets the pref in its defaults, else None."""
    for pattern in DEFAULT_PREF_GLOBS:
        for path in sorted(root.glob(pattern)):
            value = _value_in(path)
            if value is not None:
                return value, str(path)
    return None


def profiles(home: Path) -> list[Path]:
    """Every Firefox profile folder (one holding prefs.js or user.js) under the known roots."""
    found = []
    for base in PROFILE_ROOTS:
        folder = home / base
        if folder.is_dir():
            found += [p for p in sorted(folder.iterdir())
                      if p.is_dir() and ((p / "prefs.js").exists() or (p / "user.js").exists())]
    return found


def camera_settings(home: Path, root: Path = Path("/")) -> list[ProfileSetting]:
    """The effective PipeWire-camera setting of each profile (profiles with no value and no default are left out)."""
    default = packaged_default(root)
    out = []
    for profile in profiles(home):
        for name in ("user.js", "prefs.js"):   # user.js is applied last, so it decides first here
            value = _value_in(profile / name)
            if value is not None:
                out.append(ProfileSetting(profile, value, str(profile / name)))
                break
        else:
            if default is not None:
                out.append(ProfileSetting(profile, default[0], default[1]))
    return out
