"""Where the sink's frames go: v4l2loopback virtual camera, preview window, video file, null.

The browser preview is the web page's `/stream.mjpg` (capture_sink.web), behind its token.

One file per output, each an :class:`Output` subclass with a ``KEY`` and ``@register_output``;
every module of this package is imported here, so a new output is one file. Pick one by name::

    with create_output("v4l2", width=1280, height=720, fps=30, device="/dev/video20") as out:
        out.write(frame_bgr)

Wrap an output in `capture_sink.steady_writer.SteadyWriter` to keep writing at a fixed rate when frames stall.
An output module that fails to import is logged and recorded as unavailable in ``OUTPUTS``;
asking for it raises an :class:`OutputError` that says what to install.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from typing import Any

from capture_sink.outputs.base import OUTPUTS, Output, register_output
from capture_sink.outputs.errors import OutputError

logger = logging.getLogger(__name__)

# The standalone MJPEG server had no token and no Host check; the web page's stream has both.
RETIRED = {"mjpeg": "the mjpeg output is gone: the web page (on by default, drop --no-http) shows the preview "
                    "at http://127.0.0.1:8080/ behind its token"}
# pip's name for a module an output needs, where the two differ.
PIP_NAMES = {"cv2": "opencv-python-headless", "pyvirtualcam": "'holocam[v4l2]'"}


def _load_plugins() -> None:
    for module in pkgutil.iter_modules(__path__):
        try:
            importlib.import_module(f"{__name__}.{module.name}")
        except ImportError as exc:   # an output this machine cannot run must not take the sink down
            needed = PIP_NAMES.get(exc.name or "", exc.name or "holocam")
            reason = f"its module does not import ({exc}): pip install {needed}"
            OUTPUTS.unavailable(module.name, reason)
            logger.warning("W: output %r is unavailable: %s", module.name, reason)


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
    if kind in RETIRED:
        raise OutputError(RETIRED[kind])
    cls = OUTPUTS.get_or_raise(kind)
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

__all__ = ["OUTPUTS", "Output", "OutputError", "create_output", "register_output"]
