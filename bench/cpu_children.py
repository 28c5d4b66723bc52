"""What bench_cpu measures, each inside its own child process (bench/child.py).

    python -m bench.cpu_children --child ours --video V.avi --size 1280x720 --child-log LOG   # by bench_cpu

- `OursChild`: the sink (this process) running the real `SinkApp` on the MJPEG file, with the local
  segmenter started as `run --with-segmenter` starts it; answers `measure SECONDS EFFECT WARMUP`.
- `SeedChild`: the seed's loop on the same file through the same paced source; `measure ... THREADS`.
- `ModelChild`: the selfie model alone (`isolated SECONDS`) and the motion-skip evaluation (`motion N`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.child import serve  # noqa: E402
from bench.frames import FPS, read_video  # noqa: E402
from bench.harness import free_port, stop_process  # noqa: E402
from bench.measure import cpu_seconds, thread_cpu_seconds  # noqa: E402
from bench.probes import YuyvOutput  # noqa: E402

SEGMENTER_JOIN_S = 90.0
DRIVER_POLL_S = 0.05                            # how often the bench driver reads the newest mask's timing
OVERRIDES_ENV = "HOLOCAM_BENCH_SINK_SETTINGS"   # JSON of SinkConfig fields for before/after runs (--set)


class OursChild:
    """The sink (this process) and its local segmenter, running on the MJPEG file."""

    def __init__(self, video: str, width: int, height: int, log: Path) -> None:
        from capture_sink.__main__ import start_local_segmenter
        from capture_sink.app import SinkApp
        from capture_sink.config import SinkConfig, validate
        from capture_sink.steady_writer import SteadyWriter

        self.log = log
        config = validate(SinkConfig(source=video, width=width, height=height, fps=FPS, outputs=["null"],
                                     http=False, segmenting_mode="on", with_segmenter=True,
                                     bind=[f"tcp://127.0.0.1:{free_port()}"],
                                     **json.loads(os.environ.get(OVERRIDES_ENV, "{}"))))
        self.segmenter = start_local_segmenter(config)
        self.app = app = SinkApp(config)
        app.init_source()
        app.init_pipeline()
        self.writer = SteadyWriter(YuyvOutput(width, height, FPS), fps=FPS).start()
        app.add_output(self.writer)
        app._closers.append(self.writer.stop)
        app.init_dispatcher()
        app.init_watchers()
        deadline = time.monotonic() + SEGMENTER_JOIN_S
        while app.dispatcher.input_spec is None:
            if self.segmenter.poll() is not None:
                raise RuntimeError(f"the segmenter exited with {self.segmenter.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the segmenter did not say hello within {SEGMENTER_JOIN_S:.0f} s; see {log}")
            time.sleep(0.05)
        self._thread = threading.Thread(target=app.run, name="sink-loop", daemon=True)
        self._thread.start()

    def _thread_names(self) -> dict[int, str]:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        names[threading.get_native_id()] = "(bench driver)"
        return names

    def measure(self, seconds: float, effect: str, warmup_s: float) -> dict:
        app, dispatcher = self.app, self.app.dispatcher
        app.set_effect(effect)
        time.sleep(warmup_s)
        counters0, sent0 = dict(app.stats.counters), dispatcher.stats()["sent"]
        t0, sink0, seg0 = time.monotonic(), cpu_seconds(), cpu_seconds(self.segmenter.pid)
        threads0, faults0 = thread_cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        inference: dict[int, float] = {}
        end = t0 + seconds
        while time.monotonic() < end:
            result = dispatcher.latest()
            if result is not None:
                inference[result.seq] = result.inference_ms
            # a few samples a second make the median; polling every 10 ms cost the sink process
            # ~0.2 CPU ms a frame on a Zen 3 core, counted as holocam's though no user runs this thread
            time.sleep(DRIVER_POLL_S)
        t1, sink1, seg1 = time.monotonic(), cpu_seconds(), cpu_seconds(self.segmenter.pid)
        threads1, faults1 = thread_cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        counters = {k: v - counters0.get(k, 0) for k, v in app.stats.counters.items()}
        sent = dispatcher.stats()["sent"] - sent0
        frames, wall = counters.get("frames", 0), t1 - t0
        names = self._thread_names()
        by_thread: dict[str, float] = {}
        for tid, cpu in threads1.items():
            name = names.get(tid, "(native: OpenCV/FFmpeg/ZeroMQ workers)")
            by_thread[name] = by_thread.get(name, 0.0) + cpu - threads0.get(tid, 0.0)
        per_frame = lambda s: round(s * 1e3 / max(frames, 1), 3)  # noqa: E731
        return {
            "effect": effect, "frames": frames, "seconds": round(wall, 3), "fps": round(frames / wall, 2),
            "cpu_ms_per_frame": {"sink": per_frame(sink1 - sink0), "segmenter": per_frame(seg1 - seg0),
                                 "total": per_frame(sink1 - sink0 + seg1 - seg0)},
            "core_pct": {"sink": round(100 * (sink1 - sink0) / wall, 1),
                         "segmenter": round(100 * (seg1 - seg0) / wall, 1),
                         "total": round(100 * (sink1 - sink0 + seg1 - seg0) / wall, 1)},
            "sink_threads_ms_per_frame": {k: per_frame(v) for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1])},
            # page faults of the sink: fresh frame buffers must come back from malloc's free lists
            "sink_minor_faults_per_frame": round((faults1 - faults0) / max(frames, 1), 1),
            "inferences_per_frame": round(sent / max(frames, 1), 3),
            "inference_ms_live_median": round(float(np.median(list(inference.values()))), 3) if inference else None,
            "masks": {k: counters.get(k, 0) for k in ("own_mask", "older_mask", "still_mask", "no_mask")},
            "stage_ms": {k: round(v, 3) for k, v in app.stats.stage_ms.items()},
        }

    def close(self) -> None:
        self.app.stop()
        self._thread.join(5)
        self.app.close()
        stop_process(self.segmenter)


class SeedChild:
    """The seed's loop in this process, on the same MJPEG file through the same paced source."""

    def __init__(self, video: str, width: int, height: int, log: Path) -> None:
        import torch

        from bench.seed_pipeline import SeedPipeline
        from capture_sink.backgrounds import create_background
        from capture_sink.sources import VideoFileSource

        self.video, self.width, self.height = video, width, height
        self.source = VideoFileSource(video, width, height, FPS)
        first = self.source.read(5.0)
        background = create_background("default").render(first.image).copy()   # the same picture as ours
        self.pipeline = SeedPipeline(width, height, background)
        self.pipeline.record = False
        self._default_threads = torch.get_num_threads()

    def measure(self, seconds: float, effect: str, threads: str, warmup_s: float) -> dict:
        import torch
        torch.set_num_threads(self._default_threads if threads == "default" else int(threads))  # "1" arrives as 1.0
        self.pipeline.effect = effect
        frames, end = 0, time.monotonic() + warmup_s
        while time.monotonic() < end:
            frame = self.source.read(1.0)
            if frame is not None:
                self.pipeline.process(frame.image)
        t0, cpu0 = time.monotonic(), cpu_seconds()
        while time.monotonic() < t0 + seconds:
            frame = self.source.read(1.0)
            if frame is None:
                continue
            self.pipeline.process(frame.image)
            frames += 1
        wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
        return {"effect": effect, "torch_threads": torch.get_num_threads(), "frames": frames,
                "seconds": round(wall, 3), "fps": round(frames / wall, 2),
                "cpu_ms_per_frame": round(cpu * 1e3 / max(frames, 1), 3), "core_pct": round(100 * cpu / wall, 1)}

    def close(self) -> None:
        self.source.close()


class ModelChild:
    """The segmenter's default model alone (isolated inference time) and the motion-skip evaluation.

    The default model on this video's frames is the one the live pipeline runs (selfie-auto:
    the landscape model for 16:9 frames), so the live/isolated ratio compares like with like."""

    def __init__(self, video: str, width: int, height: int, log: Path) -> None:
        from segmenter.model import DEFAULT_MODEL, create_model
        self.video, self.width, self.height = video, width, height
        self.model = create_model(DEFAULT_MODEL, threads=1)
        self.spec = self.model.input_spec

    def _smalls(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        from shared.resize import prepare_input
        return [prepare_input(f, self.spec, bgr=True) for f in frames]

    def isolated(self, seconds: float) -> dict:
        """The model alone at 1 thread on frames of the video: back to back (bench_model's isolated
        figure), then one frame per source period as the live pipeline feeds it.

        The paced figure is what a model woken 30 times a second costs on this machine: between
        frames its caches go cold, which back to back never shows (docs/model-performance.md)."""
        smalls = self._smalls(read_video(self.video, 16))
        for small in smalls[:5]:
            self.model.segment(small)

        def timed(gap_s: float, until: float) -> list[float]:
            times: list[float] = []
            while time.monotonic() < until:
                small = smalls[len(times) % len(smalls)].copy()   # a fresh buffer, as a request is
                started = time.perf_counter()
                self.model.segment(small)
                times.append((time.perf_counter() - started) * 1e3)
                if gap_s:
                    time.sleep(max(0.0, gap_s - (time.perf_counter() - started)))
            return times

        back_to_back = timed(0.0, time.monotonic() + seconds)
        paced = timed(1.0 / FPS, time.monotonic() + seconds)
        return {"runs": len(back_to_back), "inference_ms_median": round(float(np.median(back_to_back)), 3),
                "paced_runs": len(paced), "paced_fps": FPS,
                "paced_inference_ms_median": round(float(np.median(paced)), 3)}

    def motion(self, frames_per_source: int) -> dict:
        """Motion skip decisions on three sources, against segmenting every frame."""
        from capture_sink.sources import DemoSource
        from capture_sink.config import SinkConfig
        from capture_sink.motion import MotionSkip, reuse_limit_s

        n = int(frames_per_source)
        demo = DemoSource(self.width, self.height, FPS)
        demo.close()
        demo_frames = [cv2.warpAffine(demo._photo, demo.transform(i / FPS), (self.width, self.height),
                                      flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for i in range(n)]
        video_frames = read_video(self.video, n)
        rng = np.random.default_rng(0)
        still = video_frames[0]
        still_frames = [np.clip(still + rng.normal(0.0, 3.0, still.shape), 0, 255).astype(np.uint8)
                        for _ in range(n)]
        out = {}
        for name, frames in (("demo", demo_frames), ("still_picture_with_noise", still_frames),
                             ("moving_video", video_frames)):
            smalls = self._smalls(frames)
            masks = [self.model.segment(s) >= 128 for s in smalls]
            # as the sink builds it: a still mask is refreshed before the fail-closed max age
            gate = MotionSkip(max_reuse_s=reuse_limit_s(SinkConfig().max_mask_age_ms))
            current, inferences, ious = None, 0, []
            for i, small in enumerate(smalls):
                if current is None or not gate.unchanged(small, current, current / FPS, now=i / FPS):
                    gate.sent(small, i)
                    current, inferences = i, inferences + 1
                ious.append(_iou(masks[current], masks[i]))
            entry = {"frames": n, "inferences": inferences,
                     "saved_pct": round(100.0 * (1 - inferences / n), 1),
                     "iou_vs_every_frame_mean": round(float(np.mean(ious)), 4),
                     "iou_vs_every_frame_min": round(float(np.min(ious)), 4)}
            if name.startswith("still"):
                jitter = [_iou(masks[i - 1], masks[i]) for i in range(1, n)]
                entry["model_own_frame_to_frame_iou_mean"] = round(float(np.mean(jitter)), 4)
            out[name] = entry
        return out

    def close(self) -> None:
        pass


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


CHILDREN = {"ours": OursChild, "seed": SeedChild, "model": ModelChild}


def _ready(runner: OursChild | SeedChild | ModelChild) -> dict:
    segmenter = getattr(runner, "segmenter", None)
    return {"pid": os.getpid(), "segmenter_pid": segmenter.pid if segmenter else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=tuple(CHILDREN), required=True)
    parser.add_argument("--video", required=True)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--child-log", type=Path, required=True)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    return serve(args.child, lambda: CHILDREN[args.child](args.video, width, height, args.child_log), _ready)


if __name__ == "__main__":
    sys.exit(main())
