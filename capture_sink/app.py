"""The sink app: wires source → dispatcher → refiner → effect/background → compositor → outputs.

Each stage lives in its own module; this file only builds them (`init_*`), runs the frame loop and
stops them in reverse order. The loop never waits unboundedly for the network: with the `wait`
pacing policy a frame waits up to `mask_budget_ms` for its own mask, then uses the newest mask
there is; with `latest` it never waits. Before any mask has arrived, frames pass through unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from shared.resize import prepare_input

from .backgrounds import create_background
from .capture import Frame, create_source
from .composite import Compositor
from .config import SinkConfig
from .dispatch import Dispatcher
from .effects import create_effect
from .outputs import create_output
from .outputs.steady import SteadyWriter
from .refine import MaskRefiner, RefineConfig, PRESETS
from .stats import SinkStats

logger = logging.getLogger(__name__)

STATS_LOG_INTERVAL_S = 5.0
READ_TIMEOUT_S = 1.0


class SinkApp:
    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self.source = None
        self.dispatcher: Dispatcher | None = None
        self.writers: list[SteadyWriter] = []
        self.last_output: np.ndarray | None = None

    # -- building -------------------------------------------------------------------------
    def init_source(self) -> None:
        c = self.config
        self.source = create_source(c.source, width=c.width, height=c.height, fps=c.fps)
        self._closers.append(self.source.close)
        logger.info("source %s: %dx%d @ %.1f fps", c.source, self.source.width, self.source.height,
                    self.source.fps)

    def init_dispatcher(self) -> None:
        c = self.config
        self.dispatcher = Dispatcher(bind=c.bind, connect=c.segmenters, curve=c.curve,
                                     insecure=c.insecure, encoding=c.encoding)
        self.dispatcher.start()
        self._closers.append(self.dispatcher.close)

    def init_pipeline(self) -> None:
        c = self.config
        refine_config = PRESETS[c.preset] if c.preset else RefineConfig()
        self.refiner = MaskRefiner(refine_config)
        self.effect = create_effect(c.effect)
        self.background = create_background(c.background)
        self.compositor = Compositor()

    def init_outputs(self) -> None:
        c = self.config
        width, height = self.source.width, self.source.height
        for kind in c.outputs:
            output = create_output(kind, width=width, height=height, fps=c.fps, **c.output_options(kind))
            writer = SteadyWriter(output, fps=c.fps)
            writer.start()
            self.writers.append(writer)
            self._closers.append(writer.close)

    def start(self) -> None:
        try:
            self.init_source()
            self.init_pipeline()
            self.init_outputs()
            self.init_dispatcher()
        except BaseException:
            self.close()
            raise

    # -- running --------------------------------------------------------------------------
    def process(self, frame: Frame) -> np.ndarray:
        """One frame through the whole sink; returns the BGR frame handed to the outputs."""
        c, stats, dispatcher = self.config, self.stats, self.dispatcher
        spec = dispatcher.input_spec
        if spec is not None:
            with stats.stage("prepare"):
                small = prepare_input(frame.image, spec, bgr=True)
            dispatcher.submit(small, frame.seq, frame.capture_time)
        with stats.stage("wait"):
            if c.pacing == "wait" and spec is not None:
                result = dispatcher.wait_for(frame.seq, c.mask_budget_ms / 1000.0)
            else:
                result = dispatcher.latest()
        if result is None:
            stats.count("no_mask")
            return frame.image
        stats.count("own_mask" if result.seq == frame.seq else "older_mask")
        stats.mask_age_ms = (time.monotonic() - result.capture_time) * 1000.0
        with stats.stage("refine"):
            alpha = self.refiner.refine(result.mask, frame.image)
        with stats.stage("effect"):
            foreground = self.effect.apply(frame.image)
        with stats.stage("background"):
            background = self.background.render(frame.image)
        with stats.stage("composite"):
            return self.compositor.composite(foreground, background, alpha)

    def run(self, max_frames: int | None = None) -> None:
        next_log = time.monotonic() + STATS_LOG_INTERVAL_S
        frames = 0
        while not self._stop.is_set():
            frame = self.source.read(READ_TIMEOUT_S)
            if frame is None:
                continue
            self.stats.frames_in.tick()
            out = self.process(frame)
            for writer in self.writers:
                writer.submit(out)
            self.last_output = out
            self.stats.frames_out.tick()
            self.stats.latency_ms = (time.monotonic() - frame.capture_time) * 1000.0
            self.stats.count("frames")
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
            now = time.monotonic()
            if now >= next_log:
                self.stats.extra.update(replicas=self.dispatcher.stats().get("replicas", 0))
                logger.info("%s", self.stats.log_line())
                next_log = now + STATS_LOG_INTERVAL_S

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # closing must go on; but say what failed
                logger.exception("error while closing %r", closer)
