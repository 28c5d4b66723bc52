"""The two pipelines bench_pipeline compares, each run inside its own child process (bench/child.py).

    python -m bench.pipeline_children --child ours --child-log LOG   # started by bench_pipeline

- `OursPipeline`: the sink's frame path (`SinkApp.process`) with the real `Dispatcher` around a
  real `python -m segmenter serve` process, each output frame handed to a real `SteadyWriter`
  whose output converts it to I420 at 30 fps.
- `SeedLoop`: the seed's synchronous loop (bench/seed_pipeline.py).
Both answer `uncapped SECONDS ...`, `paced SECONDS FPS ...` and `memory`.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.child import serve  # noqa: E402
from bench.frames import PacedBankSource, frame_bank  # noqa: E402
from bench.harness import free_port, stop_process  # noqa: E402
from bench.measure import distribution, proc_memory  # noqa: E402
from bench.probes import I420LatencyOutput, RecordingStats  # noqa: E402
from capture_sink.capture import Frame  # noqa: E402

WIDTH, HEIGHT = 1280, 720
CAMERA_FPS = 30.0
BANK_FRAMES = 16
SEGMENTER_JOIN_S = 60.0

_SEQ = itertools.count(1)   # the dispatcher needs frame numbers that only grow


class OursPipeline:
    """The sink's frame path around a real segmenter process."""

    def __init__(self, bank: list[np.ndarray], log: Path) -> None:
        from capture_sink.app import SinkApp
        from capture_sink.config import SinkConfig
        from capture_sink.outputs.steady import SteadyWriter

        self.bank = bank
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        config = SinkConfig(source="bench", width=WIDTH, height=HEIGHT, fps=CAMERA_FPS, bind=[endpoint],
                            outputs=["bench-i420"], http=False, segmenting="on")
        self.app = SinkApp(config)
        self.app.stats = self.stats = RecordingStats()
        self.app.init_pipeline()
        self.app.init_dispatcher()
        self._log = log.open("ab")
        self.segmenter = subprocess.Popen(
            [sys.executable, "-m", "segmenter", "serve", "--connect", endpoint, "--threads", "1"],
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SEGMENTER_JOIN_S
        while self.app.dispatcher.input_spec is None:
            if self.segmenter.poll() is not None:
                raise RuntimeError(f"the segmenter exited with {self.segmenter.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the segmenter did not say hello within {SEGMENTER_JOIN_S:.0f} s; see {log}")
            time.sleep(0.05)
        self.output = I420LatencyOutput(WIDTH, HEIGHT, CAMERA_FPS)
        self.writer = SteadyWriter(self.output, fps=CAMERA_FPS).start()

    @property
    def pids(self) -> dict[str, int]:
        return {"sink": os.getpid(), "segmenter": self.segmenter.pid}

    def memory(self) -> dict[str, dict[str, float]]:
        return {"sink": proc_memory(), "segmenter": proc_memory(self.segmenter.pid)}

    def _reset(self, pacing: str) -> dict:
        self.app.config.pacing = pacing
        self.stats.samples.clear()
        self.output.latencies_ms.clear()
        self.output.convert_ms.clear()
        return dict(self.stats.counters)

    def _one(self, frame: Frame, handoff: list[float], totals: list[float]) -> None:
        started = time.perf_counter()
        out = self.app.process(frame)
        submit_started = time.perf_counter()
        self.writer.submit(out)
        self.output.stamp = frame.capture_time
        done = time.perf_counter()
        self.stats.samples["handoff"].append((done - submit_started) * 1e3)
        mask = self.app.dispatcher.latest()
        if mask is not None and mask.seq == frame.seq:   # the replica's own inference time, for "wait"
            self.stats.samples["(inference in segmenter)"].append(mask.inference_ms)
        totals.append((done - started) * 1e3)
        handoff.append((time.monotonic() - frame.capture_time) * 1e3)

    def _result(self, counters_before: dict, frames: int, elapsed: float, handoff: list[float],
                totals: list[float]) -> dict:
        counters = {k: v - counters_before.get(k, 0) for k, v in self.stats.counters.items()}
        return {"frames": frames, "seconds": round(elapsed, 3), "fps": round(frames / elapsed, 2),
                "frame_ms": distribution(totals),
                "stages_ms": {k: distribution(v) for k, v in self.stats.samples.items()},
                "latency_handoff_ms": distribution(handoff),
                "latency_output_ms": distribution(self.output.latencies_ms),
                "writer_convert_ms": distribution(self.output.convert_ms),
                "masks": {k: counters.get(k, 0) for k in ("own_mask", "older_mask", "no_mask")},
                "writer": dataclasses.asdict(self.writer.stats)}

    def uncapped(self, seconds: float, pacing: str = "wait") -> dict:
        before = self._reset(pacing)
        handoff: list[float] = []
        totals: list[float] = []
        frames, start = 0, time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            image = self.bank[frames % len(self.bank)]
            self._one(Frame(image, next(_SEQ), time.monotonic()), handoff, totals)
            frames += 1
        return {"pacing": pacing, **self._result(before, frames, time.monotonic() - start, handoff, totals)}

    def paced(self, seconds: float, fps: float, pacing: str = "wait") -> dict:
        before = self._reset(pacing)
        handoff: list[float] = []
        totals: list[float] = []
        source = PacedBankSource(self.bank, fps)
        frames, start = 0, time.monotonic()
        try:
            while time.monotonic() < start + seconds:
                frame = source.read(1.0)
                if frame is None:
                    continue
                self._one(Frame(frame.image, next(_SEQ), frame.capture_time), handoff, totals)
                frames += 1
        finally:
            source.close()
        result = self._result(before, frames, time.monotonic() - start, handoff, totals)
        return {"pacing": pacing, "source_fps": fps, "source_dropped": source.dropped, **result}

    def close(self) -> None:
        self.writer.stop()
        self.app.close()
        stop_process(self.segmenter)
        self._log.close()


class SeedLoop:
    """The seed's synchronous loop (bench/seed_pipeline.py) over the same frames."""

    def __init__(self, bank: list[np.ndarray], log: Path) -> None:
        from bench.seed_pipeline import SeedPipeline
        from capture_sink.backgrounds import create_background

        self.bank = bank
        background = create_background("default").render(bank[0]).copy()  # the same picture as ours
        self.pipeline = SeedPipeline(WIDTH, HEIGHT, background)
        import torch
        self._default_threads = torch.get_num_threads()   # the seed's setting: torch's default

    @property
    def pids(self) -> dict[str, int]:
        return {"seed": os.getpid()}

    def memory(self) -> dict[str, dict[str, float]]:
        return {"seed": proc_memory()}

    def _run(self, seconds: float, next_frame: Callable[[], Frame | None]) -> dict:
        for values in self.pipeline.samples.values():
            values.clear()
        latency: list[float] = []
        totals: list[float] = []
        frames, start = 0, time.monotonic()
        while time.monotonic() < start + seconds:
            frame = next_frame()
            if frame is None:
                continue
            started = time.perf_counter()
            self.pipeline.process(frame.image)
            totals.append((time.perf_counter() - started) * 1e3)
            latency.append((time.monotonic() - frame.capture_time) * 1e3)
            frames += 1
        elapsed = time.monotonic() - start
        return {"frames": frames, "seconds": round(elapsed, 3), "fps": round(frames / elapsed, 2),
                "frame_ms": distribution(totals),
                "stages_ms": {k: distribution(v) for k, v in self.pipeline.samples.items()},
                "latency_output_ms": distribution(latency)}

    def _threads(self, threads: str) -> int:
        import torch
        torch.set_num_threads(int(threads) if threads != "default" else self._default_threads)
        return torch.get_num_threads()

    def uncapped(self, seconds: float, threads: str = "default") -> dict:
        used = self._threads(threads)
        counter = itertools.count()
        result = self._run(seconds, lambda: Frame(self.bank[next(counter) % len(self.bank)], 0, time.monotonic()))
        return {"torch_threads": used, **result}

    def paced(self, seconds: float, fps: float, threads: str = "default") -> dict:
        used = self._threads(threads)
        source = PacedBankSource(self.bank, fps)
        try:
            result = self._run(seconds, lambda: source.read(1.0))
        finally:
            source.close()
        return {"torch_threads": used, "source_fps": fps, "source_dropped": source.dropped, **result}

    def close(self) -> None:
        pass


RUNNERS = {"ours": OursPipeline, "seed": SeedLoop}


def _ready(runner: OursPipeline | SeedLoop) -> dict:
    runner.uncapped(1.0)                             # warm-up: allocations, first masks
    return {"pids": runner.pids, "frame_bank_mb": round(sum(f.nbytes for f in runner.bank) / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=tuple(RUNNERS), required=True)
    parser.add_argument("--child-log", type=Path, required=True)
    args = parser.parse_args(argv)
    return serve(args.child, lambda: RUNNERS[args.child](frame_bank(BANK_FRAMES, WIDTH, HEIGHT), args.child_log),
                 _ready)


if __name__ == "__main__":
    sys.exit(main())
