"""The sink app: wires source → dispatcher → refiner → effect/background → compositor → outputs.

Each stage lives in its own module; this file only builds them (`init_*`), runs the frame loop and
stops them in reverse order. The loop never waits unboundedly for the network: with the `wait`
pacing policy a frame waits up to `mask_budget_ms` for its own mask, then uses the newest mask
there is; with `latest` it never waits. Without a valid mask (none yet, or older than
`max_mask_age_ms`) the output fails closed: the background alone, captioned (capture_sink.failclosed).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from shared.health import LivenessFile
from shared.resize import prepare_input, whole_factor
from shared.keys import sink_keys

from .backgrounds import create_background
from .composite import Compositor
from .config import ConfigError, SinkConfig
from .control_api import PAUSE_MODES
from .dispatch import Dispatcher
from .effect_timing import overlap_effect
from .effects import create_effect
from .native import library as native_library
from .failclosed import MaskGate
from .motion import MotionSkip, reuse_limit_s
from .outputs import create_output
from .refine import MaskRefiner, RefineConfig, preset
from .sources import Frame, create_source
from .stats import SinkStats
from .steady_writer import SteadyWriter

if TYPE_CHECKING:   # built lazily: aiohttp and the watchers load only when used
    from .reload import BackgroundWatcher
    from .viewers import ViewerWatch
    from .web import WebServer

logger = logging.getLogger(__name__)

STATS_LOG_INTERVAL_S = 5.0
READ_TIMEOUT_S = 1.0


class SinkApp:
    """The running sink (a `control_api.SinkControl`). Live changes (`set_*`, `pause`) may come
    from any thread: they are queued and applied by the frame loop between two frames, so no
    stage is ever rebuilt mid-frame. Outputs come and go as a new tuple (`add_output`)."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self._changes: dict[str, object] = {}
        self._changes_lock = threading.Lock()
        self.paused = "off"
        self.segmenting = True      # frames go to the segmenters now (config.segmenting_mode decides when)
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._closers: list[Callable[[], None]] = []
        self.source = None
        self.dispatcher: Dispatcher | None = None
        self.writers: tuple[SteadyWriter, ...] = ()   # replaced whole under _writers_lock, never changed
        self._writers_lock = threading.Lock()
        self.last_output: np.ndarray | None = None
        self._guide_ready = False
        self.web: WebServer | None = None                         # init_web
        self.viewer_watch: ViewerWatch | None = None              # init_watchers
        self.background_watcher: BackgroundWatcher | None = None  # init_watchers

    # -- building -------------------------------------------------------------------------
    def init_source(self) -> None:
        c = self.config
        self.source = create_source(c.source, width=c.width, height=c.height, fps=c.fps)
        self._closers.append(self.source.close)
        logger.info("source %s: %dx%d @ %.1f fps", c.source, self.source.width, self.source.height,
                    self.source.fps)

    def init_dispatcher(self) -> None:
        c = self.config
        curve = sink_keys(c.curve_dir) if c.curve_dir else None
        self.dispatcher = Dispatcher(bind=c.bind, connect=c.segmenters, curve=curve, insecure=c.insecure,
                                     compose_network=c.compose_network, encoding=c.encoding)
        self.dispatcher.start()
        self._closers.append(self.dispatcher.close)

    def init_pipeline(self) -> None:
        c = self.config
        # OpenCV splits each call over a pool of threads that wake, spin and sleep per call: on
        # frames this size that costs more CPU than it saves wall time (bench/bench_cpu.py).
        cv2.setNumThreads(c.opencv_threads)
        native_library.load()   # builds the native passes if needed; a bad HOLOCAM_SINK_NATIVE fails here
        self.refiner = MaskRefiner(preset(c.preset))
        self.effect = create_effect(c.effect)
        self.background = create_background(c.background)
        self._closers.append(self.background.close)
        self.compositor = Compositor()
        self.gate = MaskGate(c.no_mask, c.max_mask_age_ms)
        # A reused mask is refreshed well before the fail-closed gate would call it stale, so a
        # still scene keeps its mask and a stopped segmenter still hides the person in time.
        self.motion = MotionSkip(c.motion_skip, max_reuse_s=reuse_limit_s(c.max_mask_age_ms))

    def init_outputs(self) -> None:
        c = self.config
        width, height = self.source.width, self.source.height
        for kind in c.outputs:
            output = create_output(kind, width=width, height=height, fps=c.fps, **c.output_options(kind))
            self._closers.append(output.close)
            writer = SteadyWriter(output, fps=c.fps).start()
            self.add_output(writer)
            self._closers.append(writer.stop)

    # -- controllers: they change the running sink from other threads (control_api.SinkControl) --
    def init_web(self) -> None:
        """The web page + JSON API (capture_sink.web); adds the preview to the outputs."""
        if not self.config.http:
            return
        from .web import create_web_server   # aiohttp is imported only when the page is on

        self.web = create_web_server(self).start()
        self._closers.append(self.web.stop)

    def init_watchers(self) -> None:
        """On-demand segmenting (viewers of the virtual camera or the preview) and background hot reload."""
        from .reload import BackgroundWatcher
        from .viewers import ViewerWatch

        c = self.config
        devices = [c.device] if "v4l2" in c.outputs else []
        preview = self.web.preview_viewers if self.web is not None else None
        self.viewer_watch = ViewerWatch(self, devices=devices, preview_viewers=preview,
                                        mode=c.segmenting_mode, outputs=c.outputs).start()
        self._closers.append(self.viewer_watch.stop)
        self.background_watcher = BackgroundWatcher(self).start()
        self._closers.append(self.background_watcher.stop)

    def start(self) -> None:
        try:
            self.init_source()
            self.init_pipeline()
            self.init_outputs()
            self.init_dispatcher()
            self.init_web()
            self.init_watchers()
        except BaseException:
            self.close()
            raise

    # -- live control (any thread) -----------------------------------------------------------
    def set_effect(self, name: str) -> None:
        """Switch the foreground effect; raises EffectError for an unknown name."""
        effect = create_effect(name)           # built here so a bad name fails in the caller
        self._queue_change("effect", (name, effect))

    def set_background(self, spec: str) -> None:
        """Switch the background; raises BackgroundError for a missing/unreadable file."""
        background = create_background(spec)
        self._queue_change("background", (spec, background))

    def set_refine(self, **changes: object) -> None:
        """Change refinement settings (threshold, blur, ...); raises RefineConfigError if out of range."""
        config = self.refiner.config.replace(**changes)
        self._queue_change("refine", config)

    def set_preset(self, name: str) -> None:
        self._queue_change("preset", (name, preset(name)))

    def pause(self, mode: str) -> None:
        """off: normal; passthrough: the camera picture unchanged; still: repeat the last output."""
        if mode not in PAUSE_MODES:
            raise ConfigError(f"pause mode {mode!r}: choose one of {', '.join(PAUSE_MODES)}")
        self._queue_change("pause", mode)

    def set_segmenting(self, active: bool) -> None:
        """On demand: stop sending frames to segmenters while nobody watches (outputs keep writing)."""
        self._queue_change("segmenting", bool(active))

    def add_output(self, writer: SteadyWriter) -> None:
        """Hand each output frame to `writer` too, from the next frame on (any thread)."""
        with self._writers_lock:
            self.writers = (*self.writers, writer)

    def remove_output(self, writer: SteadyWriter) -> None:
        """Stop handing frames to `writer` (any thread); a loop already on a frame hands it that one."""
        with self._writers_lock:
            self.writers = tuple(w for w in self.writers if w is not writer)

    def refine_config(self) -> RefineConfig:
        return self.refiner.config

    def transport_stats(self) -> dict | None:
        return self.dispatcher.stats() if self.dispatcher is not None else None

    def frame_size(self) -> tuple[int, int] | None:
        return (self.source.width, self.source.height) if self.source is not None else None

    def settings(self) -> dict:
        return {"effect": self.config.effect, "background": self.config.background,
                "preset": self.config.preset, "refine": self.refiner.config.as_dict(),
                "paused": self.paused, "segmenting": self.segmenting}

    def _queue_change(self, key: str, value: object) -> None:
        with self._changes_lock:
            self._changes[key] = value

    def _apply_changes(self) -> None:
        with self._changes_lock:
            changes, self._changes = self._changes, {}
        for key, value in changes.items():
            if key == "effect":
                self.config.effect, self.effect = value
            elif key == "background":
                old = self.background
                self.config.background, self.background = value
                old.close()
            elif key == "preset":
                self.config.preset, config = value
                self.refiner = MaskRefiner(config)
            elif key == "refine":
                self.refiner = MaskRefiner(value)   # buffers and kernels depend on the config
            elif key == "pause":
                self.paused = value
            elif key == "segmenting":
                self.segmenting = value
            logger.info("live change: %s", key)

    # -- running --------------------------------------------------------------------------
    def process(self, frame: Frame) -> np.ndarray:
        """One frame through the whole sink; returns the frame handed to the outputs: BGR, or YUYV
        (H, W, 2) while every output takes YUYV (`_writers_take_yuyv`)."""
        c, stats, dispatcher = self.config, self.stats, self.dispatcher
        self._guide_ready = False       # the refiner's guide made with the model's input (_model_input)
        if self._changes:
            self._apply_changes()
        if self.paused == "passthrough":
            return frame.image
        if self.paused == "still" and self.last_output is not None:
            return self.last_output
        spec = dispatcher.input_spec if self.segmenting else None
        if not self.segmenting:
            result = self._admit(dispatcher.latest(), frame)
            return self.gate.fallback(frame.image, self.background) if result is None else self._compose(frame, result)
        still = False
        if spec is not None:
            with stats.stage("prepare"):
                small = self._model_input(frame.image, spec)
                newest = dispatcher.latest()
                # Nothing moved since the newest mask's frame: reuse that mask (capture_sink/motion.py).
                still = newest is not None and self.motion.unchanged(small, newest.seq, newest.capture_time)
            if not still and dispatcher.submit(small, frame.seq, frame.capture_time):
                self.motion.sent(small, frame.seq)
        # The effect runs after the mask (in _compose) unless that no longer fits the frame period
        # (capture_sink/effect_timing.py: overlapping it with the inference slows the inference).
        foreground = None
        newest = dispatcher.latest()
        fps = self.source.fps if self.source is not None else c.fps
        # (An effect fused with the composite never runs ahead: its fused pass is the cheaper one.)
        inference_ms = newest.inference_ms if newest else None
        if not self.effect.fuses_composite and overlap_effect(stats.stage_ms, inference_ms, fps):
            with stats.stage("effect"):
                foreground = self.effect.apply(frame.image)
        with stats.stage("wait"):
            if c.pacing == "wait" and spec is not None and not still:
                result = dispatcher.wait_for(frame.seq, self._wait_budget_s(frame))
            else:
                result = dispatcher.latest()
        result = self._admit(result, frame)
        if result is None:
            stats.count("no_mask")
            return self.gate.fallback(frame.image, self.background)
        stats.count("still_mask" if still else "own_mask" if result.seq == frame.seq else "older_mask")
        stats.mask_age_ms = (time.monotonic() - result.capture_time) * 1000.0
        return self._compose(frame, result, foreground)

    def _model_input(self, image: np.ndarray, spec) -> np.ndarray:
        """The frame at the model's size for the segmenters. At a whole factor (720p) the refiner's
        guide pass takes it in the same read of the frame where that pass is native, and the guide
        is made now, not after the mask: the frame, just decoded, is read once for both."""
        factor = whole_factor(image.shape[1], image.shape[0], spec)
        if factor is not None and image.ndim == 3:
            small = np.empty((image.shape[0] // factor, image.shape[1] // factor, 3), np.uint8)
            self._guide_ready = True    # for `_compose` of this frame
            if self.refiner.prepare(image, model_input=small):
                return small
        return prepare_input(image, spec, bgr=True)

    def _admit(self, result, frame: Frame):
        """The mask if it is valid for this frame, else None (fail closed, capture_sink.failclosed)."""
        result = self.gate.admit(result, frame.capture_time, self.background, segmenting=self.segmenting)
        if self.gate.resumed:
            self.refiner.reset()   # the average of masks from before the gap no longer fits the person
        return result

    def output_state(self) -> dict:
        """What the outputs show now, for the page: {"shown": composited|waiting|camera|passthrough|still, "reason"}."""
        if self.paused == "passthrough":
            return {"shown": "passthrough", "reason": "chosen on the page or the API"}
        if self.paused == "still" and self.last_output is not None:
            return {"shown": "still", "reason": ""}
        return self.gate.state()

    def _wait_budget_s(self, frame: Frame) -> float:
        """How long this frame may wait for its own mask: the configured budget, but never so long
        that the frame (with the compositing still to do) takes more than one source period, so a
        stalled segmenter cannot lower the output rate."""
        stage = self.stats.stage_ms
        compose_s = sum(stage.get(name, 0.0) for name in ("refine", "effect", "background", "composite")) / 1000.0
        fps = self.source.fps if self.source is not None else self.config.fps
        left_s = frame.capture_time + 1.0 / fps - time.monotonic() - compose_s
        return max(0.0, min(self.config.mask_budget_ms / 1000.0, left_s))

    def _writers_take_yuyv(self) -> bool:
        """Every output writes YUYV as it comes (the virtual camera alone, nobody on the preview):
        then the composite makes the frame as YUYV and no writer converts it."""
        writers = self.writers
        return bool(writers) and all(writer.takes_yuyv for writer in writers)

    def _compose(self, frame: Frame, result, foreground: np.ndarray | None = None) -> np.ndarray:
        stats = self.stats
        yuyv = self._writers_take_yuyv()
        # The virtual camera's path over a still background (which needs no alpha of its own): the
        # alpha may stay at the refiner's working size, each row scaled up inside the native pass.
        scaled = yuyv and self.background.still
        with stats.stage("refine"):
            alpha = self.refiner.refine(result.mask, frame.image, guide_ready=self._guide_ready, scaled=scaled)
        with stats.stage("background"):
            background = self.background.render(frame.image, None if scaled else alpha)
        with stats.stage("composite"):
            # A still background's YUYV is made once: the YUYV passes copy it where the mask is 0.
            still = self.compositor.background_yuyv(background) if yuyv and self.background.still else None
            if foreground is None:
                # The effect and the composite in one step: the hologram fuses them into one native pass.
                out = self.effect.composite(frame.image, background, alpha, self.compositor, yuyv=yuyv,
                                            background_yuyv=still)
                stats.drop("effect")   # its time is in "composite" here; a stale figure would shrink the wait
                return out
            return self.compositor.composite(foreground, background, alpha, yuyv=yuyv, background_yuyv=still)

    def run(self, max_frames: int | None = None) -> None:
        next_log = time.monotonic() + STATS_LOG_INTERVAL_S
        frames = 0
        heartbeat = LivenessFile(self.config.health_file)
        while not self._stop.is_set():
            heartbeat.beat()
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
