"""Which background files a web client may choose: uploads and files in folders the user allowed.

A web client naming any path could read any picture or video on the machine back through
`/api/snapshot.jpg`, and tell from the errors whether a file exists. So a file named over the API
must resolve (following `..` and every symlink, before the check) to a file inside the upload
folder, a `--background-dir` folder (repeatable; `background_dirs` in the config file), or be
the very file the command line or config file chose at start. Anything else, missing or not,
gets the same one error text. Built-in backgrounds (default, blur, colours, ...) are not files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from capture_sink.reload import background_file

NOT_ALLOWED = ("background {spec!r} is not an upload or a file in an allowed folder: upload the picture, "
               "or start holocam with --background-dir FOLDER (or background_dirs in the config file)")


class BackgroundNotAllowed(ValueError):
    """A background file the web may not use (or that does not exist: the same answer)."""


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve(strict=False)


class BackgroundFiles:
    """The rule above for one sink.

    Args:
        folders: the upload folder and the --background-dir folders.
        startup: the background spec the sink started with (its file, if any, stays allowed).
    """

    def __init__(self, folders: Iterable[str | os.PathLike], startup: str = "") -> None:
        self.folders = [_resolved(folder) for folder in folders]
        start_file = background_file(startup) if startup else None
        self.startup = _resolved(start_file) if start_file is not None else None

    def check(self, spec: str) -> str:
        """The spec to load: `spec` if built in, else the real path of an allowed, existing file
        (so what is loaded is what was checked). Raises BackgroundNotAllowed otherwise."""
        path = background_file(spec)
        if path is None:
            return spec
        try:
            real = _resolved(path)
        except (OSError, RuntimeError):        # a symlink loop: as good as missing
            raise BackgroundNotAllowed(NOT_ALLOWED.format(spec=spec)) from None
        inside = real == self.startup or any(real.is_relative_to(folder) for folder in self.folders)
        if not inside or not real.is_file():
            raise BackgroundNotAllowed(NOT_ALLOWED.format(spec=spec))
        return str(real)
