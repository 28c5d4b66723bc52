"""What the sink's controllers (the web page, the viewer watch, hot reload) may ask of the running sink.

The web layer types the app as `SinkControl` and imports this module, not `capture_sink.app`,
so the app can build the web server without an import cycle. Every method may be called from
any thread: changes are queued and applied by the frame loop between two frames, and outputs
are added and removed as a whole new tuple, so the frame loop never sees a list change under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:   # types only: importing these at run time would bring the whole pipeline in
    from .config import SinkConfig
    from .steady_writer import SteadyWriter
    from .refine import RefineConfig
    from .reload import BackgroundWatcher
    from .stats import SinkStats
    from .viewers import ViewerWatch

# off: normal; passthrough: the camera picture unchanged; still: repeat the last output.
PAUSE_MODES = ("off", "passthrough", "still")


class SinkControl(Protocol):
    """The running sink as its controllers see it (capture_sink.app.SinkApp implements it)."""

    config: SinkConfig
    stats: SinkStats
    segmenting: bool                              # frames go to the segmenters right now
    viewer_watch: ViewerWatch | None              # on-demand segmenting, once started
    background_watcher: BackgroundWatcher | None  # background hot reload, once started

    def settings(self) -> dict[str, Any]:
        """The live settings: effect, background, preset, refine, paused, segmenting."""

    def refine_config(self) -> RefineConfig:
        """The refinement settings in use (a change builds on them)."""

    def output_state(self) -> dict[str, str]:
        """What the outputs show now: {"shown", "reason"}."""

    def transport_stats(self) -> dict[str, Any] | None:
        """The dispatcher's counters and replicas, or None before it started."""

    def frame_size(self) -> tuple[int, int] | None:
        """The source's (width, height), or None before the source is open."""

    def set_effect(self, name: str) -> None: ...

    def set_background(self, spec: str) -> None: ...

    def set_refine(self, **changes: object) -> None: ...

    def set_preset(self, name: str) -> None: ...

    def pause(self, mode: str) -> None: ...

    def set_segmenting(self, active: bool) -> None: ...

    def add_output(self, writer: SteadyWriter) -> None:
        """Start handing each output frame to `writer`."""

    def remove_output(self, writer: SteadyWriter) -> None:
        """Stop handing frames to `writer`; the frame loop hands it at most the frame it is on."""
