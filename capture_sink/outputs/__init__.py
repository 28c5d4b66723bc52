"""Where the sink's frames go: v4l2loopback virtual camera, preview window, video file, null.

The browser preview is the web page's `/stream.mjpg` (capture_sink.web), behind its token.

One file per output, each an :class:`Output` subclass with a ``KEY``; pick one by name::

    with create_output("v4l2", width=1280, height=720, fps=30, device="/dev/video20") as out:
        out.write(frame_bgr)

Wrap an output in `capture_sink.steady_writer.SteadyWriter` to keep writing at a fixed rate when frames stall.
An output module that fails to import is logged and left out of ``OUTPUTS``; asking for it
raises an :class:`OutputError` that says what to install.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from capture_sink.outputs.base import Output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

# key -> (module, class, what to install if the module cannot be imported)
_PLUGINS: dict[str, tuple[str, str, str]] = {
    "v4l2": ("capture_sink.outputs.v4l2", "V4L2Output", "pip install 'holocam[v4l2]'"),
    "window": ("capture_sink.outputs.window", "WindowOutput", "pip install opencv-python"),
    "file": ("capture_sink.outputs.file", "FileOutput", "pip install opencv-python-headless"),
    "null": ("capture_sink.outputs.null", "NullOutput", "pip install holocam"),
}

OUTPUTS: dict[str, type[Output]] = {}
# The standalone MJPEG server had no token and no Host check; the web page's stream has both.
RETIRED = {"mjpeg": "the mjpeg output is gone: the web page (on by default, drop --no-http) shows the preview "
                    "at http://127.0.0.1:8080/ behind its token"}
UNAVAILABLE: dict[str, str] = {}  # key -> one-line reason with the fix


def _load_plugins() -> None:
    for key, (module_name, class_name, install) in _PLUGINS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            UNAVAILABLE[key] = f"output {key!r} is unavailable ({e}): {install}"
            logger.warning("W: %s", UNAVAILABLE[key])
            continue
        cls = getattr(module, class_name)
        if cls.KEY != key:
            raise RuntimeError(f"{module_name}.{class_name}.KEY is {cls.KEY!r}, registered as {key!r}")
        OUTPUTS[key] = cls


def create_output(kind: str, *, width: int, height: int, fps: float, **options: Any) -> Output:
    """Open the output named ``kind`` for frames of ``width`` x ``height`` at ``fps``.

    Args:
        kind: one of ``OUTPUTS`` ("v4l2", "window", "file", "null").
        width, height, fps: the frames that will be written.
        options: the output's own settings (e.g. ``device=``, ``backend=`` for v4l2; ``path=`` for file).

    Returns:
        The open output; close it (or use it as a context manager) when done.

    Raises:
        OutputError: unknown or unavailable kind, an unknown option, or the output could not open.
    """
    if kind in UNAVAILABLE:
        raise OutputError(UNAVAILABLE[kind])
    if kind in RETIRED:
        raise OutputError(RETIRED[kind])
    if kind not in OUTPUTS:
        raise OutputError(f"unknown output {kind!r}: choose one of {', '.join(sorted(OUTPUTS))}")
    cls = OUTPUTS[kind]
    accepted = [
        name for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("width", "height", "fps")
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise OutputError(
            f"output {kind!r} has no option {', '.join(unknown)}: its options are {', '.join(accepted) or 'none'}"
        )
    return cls(width=width, height=height, fps=fps, **options)


_load_plugins()

__all__ = ["OUTPUTS", "UNAVAILABLE", "Output", "OutputError", "create_output"]
