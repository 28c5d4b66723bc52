"""CPU per output frame: what a user pays, summed over every holocam process, against the seed's loop.

    python -m bench.bench_cpu            # ~3 min; writes bench/results/cpu.json + cpu.png
    python -m bench.bench_cpu --quick    # ~1.5 min smoke run

The source is camera-like: an MJPEG .avi (real photos, astronaut and Grace Hopper, with a slow
pan, zoom and sway) written here with cv2.VideoWriter, so each frame is decoded from JPEG as a
webcam's MJPG frames are, paced at the file's 30 fps by the sink's own `VideoFileSource`.

- **holocam**: one sink process running the real `SinkApp` (source, dispatcher, refine, effect,
  background, composite, steady writer) with the local segmenter started by the launcher that
  `run --with-segmenter` uses (`capture_sink.__main__.start_local_segmenter`), default settings.
  The steady writer's output converts every frame to YUYV as the v4l2 writer does (no loopback
  device here; the write(2) itself is left out).
- **seed**: `bench/seed_pipeline.py` in one process, reading the same file through the same
  `VideoFileSource`, at torch's default threads and at 1 thread; the baseline is the lower CPU
  per frame of the two (the seed cannot keep up with 30 fps, so it runs flat out).

CPU time is user + system from /proc/PID/stat of the sink and of its segmenter, over a window
after a warm-up, divided by the frames the sink's loop output in that window; "% of one core"
is the same CPU time over the wall time. 1280x720 and 1920x1080, effect hologram and none.

Also measured:
- the segmenter's inference time inside the running pipeline (median of the masks' own
  `inference_ms`) against the same model looped alone in a fresh process (issue 12 part 5);
- motion skip (capture_sink/motion.py): inferences saved on the demo source, on a still picture
  (with camera-like noise) and on the moving video, and the IoU of the masks it reuses against
  segmenting every frame (the model's own frame-to-frame IoU on the noisy still beside it).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402
from bench.child import LineChild  # noqa: E402
from capture_sink.outputs.base import Output  # noqa: E402
from capture_sink.outputs.yuv import BgrToYuyv  # noqa: E402

logger = logging.getLogger(__name__)

RESULTS = REPO / "bench" / "results"
SIZES = ((1280, 720, "720p"), (1920, 1080, "1080p"))
EFFECTS = ("hologram", "none")
FPS = 30.0
VIDEO_FRAMES = 150                 # a 5 s loop
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SEGMENTER_JOIN_S = 90.0
TARGETS_MS = {"720p_hologram": 12.0, "1080p_hologram": 24.0}
TARGET_RATIO_VS_SEED = 1.0 / 3.0
OVERRIDES_ENV = "HOLOCAM_BENCH_SINK_SETTINGS"   # JSON of SinkConfig fields for before/after runs (--set)


# ---- the source -----------------------------------------------------------------------------
def _photo(name: str) -> np.ndarray:
    if name == "hopper":
        import matplotlib
        return cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    from skimage import data
    return cv2.cvtColor(getattr(data, name)(), cv2.COLOR_RGB2BGR)


def moving_frame(photo: np.ndarray, i: int, n: int) -> np.ndarray:
    """Frame i of n: the photo with a slow pan, zoom and sway (a person shifting in a chair)."""
    height, width = photo.shape[:2]
    t = 2 * math.pi * i / n
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 2.0 * math.sin(t), 1.04 + 0.03 * math.sin(2 * t))
    matrix[0, 2] += 0.03 * width * math.sin(t)
    matrix[1, 2] += 0.015 * height * math.cos(t)
    return cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_mjpeg(path: Path, width: int, height: int, frames: int = VIDEO_FRAMES) -> Path:
    """An MJPEG .avi at 30 fps: astronaut for the first half, Grace Hopper for the second, moving."""
    from capture_sink.sources import scale_to_fill
    photos = [scale_to_fill(_photo(name), width, height) for name in ("astronaut", "hopper")]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPEG to {path}: its wheel lacks the FFmpeg/MJPG writer")
    half = frames // 2
    for i in range(frames):
        writer.write(moving_frame(photos[i // half if i < 2 * half else 1], i % half, half))
    writer.release()
    return path


# ---- CPU accounting ---------------------------------------------------------------------------
def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process (all its threads) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_seconds(pid: int | str = "self") -> dict[int, float]:
    """CPU seconds per thread id of a process."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the children ---------------------------------------------------------------------------------
class YuyvOutput(Output):
    """The v4l2 writer's per-frame work without a device: BGR -> YUYV into a reused buffer."""

    KEY = "bench-yuyv"

    def __init__(self, width: int, height: int, fps: float) -> None:
        super().__init__(width=width, height=height, fps=fps)
        self._convert = BgrToYuyv(width, height)

    def write(self, frame_bgr: np.ndarray) -> None:
        self._convert.convert(frame_bgr)
        self.frames_written += 1

    def _close(self) -> None:
        pass


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
                                     bind=[f"tcp://127.0.0.1:{_free_port()}"],
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
        threads0 = thread_cpu_seconds()
        inference: dict[int, float] = {}
        end = t0 + seconds
        while time.monotonic() < end:
            result = dispatcher.latest()
            if result is not None:
                inference[result.seq] = result.inference_ms
            time.sleep(0.01)
        t1, sink1, seg1 = time.monotonic(), cpu_seconds(), cpu_seconds(self.segmenter.pid)
        threads1 = thread_cpu_seconds()
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
            "inferences_per_frame": round(sent / max(frames, 1), 3),
            "inference_ms_live_median": round(float(np.median(list(inference.values()))), 3) if inference else None,
            "masks": {k: counters.get(k, 0) for k in ("own_mask", "older_mask", "still_mask", "no_mask")},
            "stage_ms": {k: round(v, 3) for k, v in app.stats.stage_ms.items()},
        }

    def close(self) -> None:
        self.app.stop()
        self._thread.join(5)
        self.app.close()
        self.segmenter.terminate()
        try:
            self.segmenter.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.segmenter.kill()
            self.segmenter.wait()


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
    """The selfie model alone (isolated inference time) and the motion-skip evaluation."""

    def __init__(self, video: str, width: int, height: int, log: Path) -> None:
        from segmenter.model import create_model
        self.video, self.width, self.height = video, width, height
        self.model = create_model("selfie", threads=1)
        self.spec = self.model.input_spec

    def _smalls(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        from shared.resize import prepare_input
        return [prepare_input(f, self.spec, bgr=True) for f in frames]

    def isolated(self, seconds: float) -> dict:
        """Back to back at 1 thread on frames of the video, like bench_model's isolated figure."""
        smalls = self._smalls(_read_video(self.video, 16))
        for small in smalls[:5]:
            self.model.segment(small)
        times, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            small = smalls[len(times) % len(smalls)].copy()   # a fresh buffer, as a request is
            started = time.perf_counter()
            self.model.segment(small)
            times.append((time.perf_counter() - started) * 1e3)
        return {"runs": len(times), "inference_ms_median": round(float(np.median(times)), 3)}

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
        video_frames = _read_video(self.video, n)
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


def _read_video(path: str, n: int) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(path), []
    while len(frames) < n:
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(image)
    cap.release()
    return frames


CHILDREN = {"ours": OursChild, "seed": SeedChild, "model": ModelChild}


def child_main(role: str, video: str, width: int, height: int, log: Path) -> int:
    """Serve the parent's commands, one JSON line each (stdout is the channel)."""
    channel = sys.stdout
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {role} %(levelname).1s %(name)s: %(message)s")
    runner = CHILDREN[role](video, width, height, log)

    def reply(obj: dict) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    try:
        segmenter = getattr(runner, "segmenter", None)
        reply({"ready": True, "pid": os.getpid(), "segmenter_pid": segmenter.pid if segmenter else None})
        for line in sys.stdin:
            command, *args = line.split()
            if command == "quit":
                break
            method = getattr(runner, command)
            reply(method(*[_number_or_word(a) for a in args]))
    finally:
        runner.close()
    reply({"bye": True})
    return 0


def _number_or_word(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class Child(LineChild):
    """A child process of this benchmark (role sink, segmenter, seed or model)."""

    def __init__(self, role: str, video: Path, width: int, height: int, log_dir: Path) -> None:
        super().__init__("bench.bench_cpu", role, ["--video", str(video), "--size", f"{width}x{height}"],
                         log_dir / f"cpu-{role}-{width}x{height}.log")


# ---- the parent -----------------------------------------------------------------------------------
def _profile(ours: Child, seconds: float, warmup: float) -> dict:
    """py-spy on the sink and its segmenter at the paced 30 fps (after the measured windows)."""
    from bench import profile as profiler
    pids = {"paced_sink": ours.info["pid"], "paced_segmenter": ours.info["segmenter_pid"]}
    try:
        profiles = profiler.profile_during(pids, seconds, RESULTS,
                                           lambda: ours.ask("measure", seconds + 1.0, "hologram", 0.0))
    except profiler.ProfileError as exc:
        logger.warning("W: no profiles: %s", exc)
        return {"error": str(exc)}
    profiler.write_markdown(profiles, RESULTS / "profiles_paced.md",
                            during="a paced 30 fps 1280x720 MJPEG source, hologram, default settings (bench/bench_cpu.py)")
    return profiles


def run(quick: bool = False, only: tuple[str, ...] = (), settings: dict | None = None,
        seed: bool = True, extras: bool = True, out_name: str = "cpu", profile: bool = True) -> dict:
    """Measure every configuration; write bench/results/cpu.json + cpu.png.

    `only` limits the configurations (e.g. ("720p_hologram",)), `settings` are SinkConfig fields
    for the sink (before/after checks of one setting), `seed`/`extras` skip the seed's loop and the
    isolated-model and motion-skip measurements, `out_name` names the JSON/PNG.
    """
    if settings:
        os.environ[OVERRIDES_ENV] = json.dumps(settings)
    seconds, warmup = (4.0, 1.5) if quick else (8.0, 2.0)
    seed_seconds = 3.0 if quick else 5.0
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="holocam-bench-cpu-"))
    load_start = os.getloadavg()
    configs: dict[str, dict] = {}
    isolated: dict = {}
    motion: dict = {}
    kernel_log: list[str] = []
    profiles: dict | None = None
    for width, height, label in SIZES:
        effects = [e for e in EFFECTS if not only or f"{label}_{e}" in only]
        if not effects:
            continue
        video = write_mjpeg(work / f"source-{label}.avi", width, height)
        ours = Child("ours", video, width, height, work)
        try:
            for effect in effects:
                configs[f"{label}_{effect}"] = {"holocam": ours.ask("measure", seconds, effect, warmup)}
            if profile and label == "720p" and "hologram" in effects:
                profiles = _profile(ours, seconds, warmup)
        finally:
            ours.close()
        kernel_log = kernel_log or machine.kernel_lines(ours.log.read_text(errors="replace"))
        if seed:
            seed_child = Child("seed", video, width, height, work)
            try:
                for effect in effects:
                    runs = [seed_child.ask("measure", seed_seconds, effect, threads, 1.0) for threads in ("default", "1")]
                    best = min(runs, key=lambda r: r["cpu_ms_per_frame"])
                    configs[f"{label}_{effect}"]["seed"] = {**best, "runs": runs}
            finally:
                seed_child.close()
        if label == "720p" and extras:
            model = Child("model", video, width, height, work)
            try:
                isolated = model.ask("isolated", 3.0 if quick else 5.0)
                motion = model.ask("motion", 60 if quick else 150)
            finally:
                model.close()
    for key, row in configs.items():
        ours, baseline = row["holocam"], row.get("seed")
        row["cpu_ms_per_frame"] = ours["cpu_ms_per_frame"]["total"]
        row["core_pct"] = ours["core_pct"]["total"]
        row["target_ms"] = TARGETS_MS.get(key)
        if baseline:
            row["seed_cpu_ms_per_frame"] = baseline["cpu_ms_per_frame"]
            row["seed_core_pct"] = baseline["core_pct"]
            row["ratio_vs_seed"] = round(row["cpu_ms_per_frame"] / baseline["cpu_ms_per_frame"], 3)
    live = [row["holocam"]["inference_ms_live_median"] for key, row in configs.items()
            if key.startswith("720p") and row["holocam"]["inference_ms_live_median"]]
    result = {
        "benchmark": "cpu",
        "quick": quick,
        "machine": {**machine.describe(kernel_build=machine.loaded_kernel_build()),
                    "segmenter_kernel_log": kernel_log},
        "sink_settings": settings or {},
        "source": f"MJPEG .avi, {VIDEO_FRAMES} frames at {FPS:.0f} fps (astronaut, Grace Hopper; pan/zoom/sway), "
                  f"decoded by the sink's VideoFileSource",
        "output": "steady writer -> BGR to YUYV conversion (as the v4l2 writer), no device",
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "configs": configs,
        "inference_live_vs_isolated": {
            "live_ms_median_720p": round(float(np.median(live)), 3) if live else None,
            "isolated_ms_median": isolated.get("inference_ms_median"),
            "ratio": round(float(np.median(live)) / isolated["inference_ms_median"], 3)
            if live and isolated.get("inference_ms_median") else None,
            "target_ratio": 1.3},
        "motion_skip": motion,
        "profiles": profiles,
        "targets": {"cpu_ms_per_frame": TARGETS_MS, "ratio_vs_seed": round(TARGET_RATIO_VS_SEED, 3)},
        "logs": str(work),
    }
    for path in work.glob("*.avi"):
        path.unlink()
    (RESULTS / f"{out_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    if seed:
        plot(result, RESULTS / f"{out_name}.png")
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = result["configs"]
    keys = list(configs)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    x = np.arange(len(keys))
    ax = axes[0]
    sink = [configs[k]["holocam"]["cpu_ms_per_frame"]["sink"] for k in keys]
    seg = [configs[k]["holocam"]["cpu_ms_per_frame"]["segmenter"] for k in keys]
    seed = [configs[k]["seed_cpu_ms_per_frame"] for k in keys]
    ax.bar(x - 0.2, sink, 0.4, label="holocam sink", color="#1f77b4")
    ax.bar(x - 0.2, seg, 0.4, bottom=sink, label="holocam segmenter", color="#7fb3e0")
    bars = ax.bar(x + 0.2, seed, 0.4, label="seed loop", color="#b0b0b0")
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    for i, k in enumerate(keys):
        ax.text(i - 0.2, sink[i] + seg[i], f"{sink[i] + seg[i]:.1f}", ha="center", va="bottom", fontsize=8)
        if configs[k]["target_ms"]:
            ax.hlines(configs[k]["target_ms"], i - 0.42, i + 0.02, colors="k", linestyles="--", lw=1)
    ax.set_xticks(x, [k.replace("_", "\n") for k in keys])
    ax.set(ylabel="CPU ms per output frame (all processes)",
           title=f"paced 30 fps MJPEG source (dashes: targets); {result['machine']['cpu']}")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.bar(x - 0.2, [configs[k]["core_pct"] for k in keys], 0.4, label="holocam", color="#1f77b4")
    ax.bar(x + 0.2, [configs[k]["seed_core_pct"] for k in keys], 0.4, label="seed loop", color="#b0b0b0")
    ax.set_xticks(x, [k.replace("_", "\n") for k in keys])
    ax.set(ylabel="% of one core", title="CPU use (the seed runs flat out below 30 fps)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows: a smoke run")
    parser.add_argument("--only", default="", help="comma-separated configurations, e.g. 720p_hologram")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="a sink setting for this run, e.g. motion_skip=false (before/after checks)")
    parser.add_argument("--no-seed", action="store_true", help="holocam only (no seed loop, no extras)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles at 30 fps")
    parser.add_argument("--out", default="cpu", help="result name under bench/results (default cpu)")
    parser.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="1280x720", help=argparse.SUPPRESS)
    parser.add_argument("--child-log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        width, height = (int(v) for v in args.size.split("x"))
        return child_main(args.child, args.video, width, height, args.child_log)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    only = tuple(c.strip() for c in args.only.split(",") if c.strip())
    result = run(quick=args.quick, only=only, settings=settings, seed=not args.no_seed, extras=not args.no_seed,
                 out_name=args.out, profile=not args.no_profile)
    for key, row in result["configs"].items():
        ours = row["holocam"]
        print(f"{key:16s} holocam {row['cpu_ms_per_frame']:6.2f} ms/frame ({row['core_pct']:5.1f}% core; sink "
              f"{ours['cpu_ms_per_frame']['sink']:.2f}, segmenter {ours['cpu_ms_per_frame']['segmenter']:.2f})"
              + (f"  seed {row['seed_cpu_ms_per_frame']:6.2f} ({row['seed_core_pct']:5.1f}%)  ratio "
                 f"{row['ratio_vs_seed']:.3f}" if "seed_cpu_ms_per_frame" in row else ""))
    print(f"inference live vs isolated: {result['inference_live_vs_isolated']}")
    print(f"motion skip: {json.dumps(result['motion_skip'])}")
    print(f"wrote {RESULTS / (args.out + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
