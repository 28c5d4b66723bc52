"""Where holocam keeps what it downloads or builds (weights, kernel builds): one rule for both services."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HOLOCAM_CACHE_DIR"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The flag, else $HOLOCAM_CACHE_DIR, else $XDG_CACHE_HOME/holocam (~/.cache/holocam)."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "holocam"
