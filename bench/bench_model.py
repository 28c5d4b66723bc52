"""Selfie-segmentation model speed: the PyTorch port (eager and fast path) against LiteRT.

    python bench/bench_model.py              # 300 timed runs per case; bench/results/model.json + model.png
    python bench/bench_model.py --quick      # 40 runs, a smoke check (not for figures)
    python bench/bench_model.py --compile    # also torch.compile (inductor); ~1 min compile per model

Runners: torch_fast (what the segmenter serves: fused graph + the fused NHWC kernels),
torch_stock (the same graph on stock torch ops: what the kernels buy), torch_unfused (traced, no
graph fusions), torch_eager, LiteRT. Every case is one frame through the model as a segmenter serves it: uint8 RGB at model size in,
uint8 mask out (torch: `SelfieSegmentation.segment`; LiteRT: rgb/255 -> set_tensor -> invoke ->
get_tensor -> round). Both models, 1 and 2 threads. The runners take turns in blocks of 20
frames, so all of them see the same machine load while each block runs with warm caches;
figures are medians and 95th percentiles of wall time after a warm-up. The ratios torch/LiteRT
are printed and stored; the target (bench/targets.py) is fast/LiteRT <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import skimage.data
import torch

from bench import plots
from segmenter.kernels import load as load_kernels
from segmenter.malloc_tuning import keep_frame_buffers_in_heap
from segmenter.model.selfie import SELFIE_SPECS, ProbabilityPipeline, SelfieSegmentation, load_selfie
from segmenter.model.selfie_net import SelfieNet
from segmenter.model.tflite_graph import read_tflite
from segmenter.weights import weights_path
from shared.resize import prepare_input

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"
MODELS = ("selfie", "selfie-landscape")
THREADS = (1, 2)
BLOCK = 20

Runner = Callable[[np.ndarray], np.ndarray]


def _litert_runner(name: str, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(weights_path(name)), num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    scale = np.float32(255.0)

    def segment(rgb: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(input_index, (rgb.astype(np.float32) / scale)[None])
        interpreter.invoke()
        return np.rint(interpreter.get_tensor(output_index)[0, :, :, 0] * scale).astype(np.uint8)

    return segment


def _compiled_runner(name: str) -> tuple[Runner, float]:
    """torch.compile (inductor, frozen weights) of the same pipeline; returns (runner, compile s)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    model = load_selfie(name, fast=False)
    compiled = torch.compile(ProbabilityPipeline(model.net).eval())
    buffer = torch.zeros((1, model.net.height, model.net.width, 3), dtype=torch.uint8)
    started = time.perf_counter()
    with torch.inference_mode():
        compiled(buffer)
    seconds = time.perf_counter() - started

    def segment(rgb: np.ndarray) -> np.ndarray:
        buffer.numpy()[0] = rgb
        with torch.inference_mode():
            return compiled(buffer).mul_(255.0).round_().to(torch.uint8).numpy()

    return segment, seconds


def _unfused_runner(name: str) -> Runner:
    """The traced path without the graph fusions (in-place activations, folded gates, input conv,
    one-GEMM output layer) nor the fused kernels: what those fusions buy, measured in the same run."""
    net = SelfieNet(read_tflite(weights_path(name)), fuse=False)
    return SelfieSegmentation(net, name, fast=True).segment


def _time_in_turns(runners: dict[str, Runner], rgb: np.ndarray, warmup: int,
                   runs: int) -> dict[str, dict[str, float]]:
    """Runners take turns in blocks of BLOCK frames: all see the same machine load, yet each block
    runs with warm caches, as a segmenter serving one model does (frame-by-frame turns would let
    the other runners evict its weights and activations every frame)."""
    for segment in runners.values():
        for _ in range(warmup):
            segment(rgb)
    samples: dict[str, list[float]] = {key: [] for key in runners}
    while min(len(values) for values in samples.values()) < runs:
        for key, segment in runners.items():
            segment(rgb)  # untimed: refills the caches after the other runners
            for _ in range(min(BLOCK, runs - len(samples[key]))):
                started = time.perf_counter()
                segment(rgb)
                samples[key].append(time.perf_counter() - started)
    stats = {}
    for key, values in samples.items():
        ms = np.asarray(values) * 1e3
        stats[key] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
                      "min_ms": float(ms.min()), "runs": len(values)}
    return stats


def run(quick: bool = False, compile_too: bool = False) -> dict:
    """Time every case, write bench/results/model.json and model.png, return the results."""
    runs, warmup = (40, 10) if quick else (300, 40)
    malloc_tuned = keep_frame_buffers_in_heap()
    photo = skimage.data.astronaut()
    results: dict = {
        "command": "python bench/bench_model.py" + (" --quick" if quick else "")
                   + (" --compile" if compile_too else ""),
        "what": f"ms per frame, uint8 RGB at model size -> uint8 mask, wall time, runners in turns "
                f"of {BLOCK} frames",
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "load_average_start": os.getloadavg(),
                    "glibc_malloc_keeps_buffers": malloc_tuned, "fused_kernels": load_kernels()},
        "cases": [],
    }
    default_threads = torch.get_num_threads()
    compile_seconds: dict[str, float] = {}
    try:
        for name in MODELS:
            rgb = prepare_input(photo, SELFIE_SPECS[name], bgr=False)
            compiled = None
            if compile_too:
                torch.set_num_threads(1)
                compiled, compile_seconds[name] = _compiled_runner(name)
            for threads in THREADS:
                torch.set_num_threads(threads)
                fast, eager = load_selfie(name, fast=True), load_selfie(name, fast=False)
                stock = load_selfie(name, fast=True, kernels=False)
                runners: dict[str, Runner] = {"torch_fast": fast.segment, "torch_stock": stock.segment,
                                              "torch_unfused": _unfused_runner(name),
                                              "torch_eager": eager.segment,
                                              "litert": _litert_runner(name, threads)}
                if compiled is not None:
                    runners["torch_compile"] = compiled
                stats = _time_in_turns(runners, rgb, warmup, runs)
                litert_ms = stats["litert"]["median_ms"]
                case = {"model": name, "threads": threads, **stats,
                        "ratio_fast_to_litert": stats["torch_fast"]["median_ms"] / litert_ms,
                        "ratio_stock_to_litert": stats["torch_stock"]["median_ms"] / litert_ms,
                        "kernels_speedup": stats["torch_stock"]["median_ms"] / stats["torch_fast"]["median_ms"],
                        "ratio_unfused_to_litert": stats["torch_unfused"]["median_ms"] / litert_ms,
                        "ratio_eager_to_litert": stats["torch_eager"]["median_ms"] / litert_ms}
                if compiled is not None:
                    case["ratio_compile_to_litert"] = stats["torch_compile"]["median_ms"] / litert_ms
                results["cases"].append(case)
                logger.info("%s, %d thread(s): fast %.2f ms, eager %.2f ms, LiteRT %.2f ms", name, threads,
                            stats["torch_fast"]["median_ms"], stats["torch_eager"]["median_ms"], litert_ms)
    finally:
        torch.set_num_threads(default_threads)
    if compile_seconds:
        results["compile_seconds"] = compile_seconds
    # The headline figure: fast path / LiteRT, general model, 1 thread (target: bench/targets.py TORCH_OVER_LITERT).
    headline = next(case for case in results["cases"] if case["model"] == "selfie" and case["threads"] == 1)
    results["torch_over_litert"] = headline["ratio_fast_to_litert"]
    results["machine"]["load_average_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, RESULTS / "model.png")
    return results


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _plot(results: dict, path: Path) -> None:
    plt = plots.pyplot()

    cases = results["cases"]
    runners = [key for key in ("torch_eager", "torch_unfused", "torch_stock", "torch_fast", "torch_compile", "litert")
               if key in cases[0]]
    labels = [f"{case['model']}\n{case['threads']} thread(s)" for case in cases]
    x = np.arange(len(cases))
    width = 0.8 / len(runners)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, key in enumerate(runners):
        medians = [case[key]["median_ms"] for case in cases]
        p95 = [case[key]["p95_ms"] - case[key]["median_ms"] for case in cases]
        offset = (i - (len(runners) - 1) / 2) * width
        bars = ax.bar(x + offset, medians, width, yerr=[[0] * len(cases), p95], capsize=3,
                      label=key.replace("_", " "))
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.set_xticks(x, labels)
    # A p95 spike from another process on the shared cores must not flatten the medians.
    ax.set_ylim(0, 2.0 * max(case[key]["median_ms"] for case in cases for key in runners))
    ax.set_ylabel("ms per frame (median, whisker = p95, clipped)")
    ax.set_title("Selfie segmentation: PyTorch port vs LiteRT (XNNPACK), uint8 in -> uint8 mask out")
    ax.legend()
    plots.save(fig, path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 runs per case: a smoke check")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    results = run(quick=args.quick, compile_too=args.compile)
    print(f"{'model':18s}{'threads':>8s}{'fast ms':>10s}{'stock ms':>10s}{'unfused ms':>12s}{'eager ms':>10s}"
          f"{'LiteRT ms':>11s}{'fast/LiteRT':>13s}{'stock/LiteRT':>14s}{'unfused/LiteRT':>16s}")
    for case in results["cases"]:
        print(f"{case['model']:18s}{case['threads']:>8d}{case['torch_fast']['median_ms']:>10.2f}"
              f"{case['torch_stock']['median_ms']:>10.2f}{case['torch_unfused']['median_ms']:>12.2f}"
              f"{case['torch_eager']['median_ms']:>10.2f}{case['litert']['median_ms']:>11.2f}"
              f"{case['ratio_fast_to_litert']:>12.2f}x{case['ratio_stock_to_litert']:>13.2f}x"
              f"{case['ratio_unfused_to_litert']:>15.2f}x")
    print(f"torch_over_litert (selfie, 1 thread): {results['torch_over_litert']:.2f}")
    if "compile_seconds" in results:
        for case in results["cases"]:
            print(f"{case['model']} {case['threads']} thread(s): torch.compile "
                  f"{case['torch_compile']['median_ms']:.2f} ms ({case['ratio_compile_to_litert']:.2f}x)")
        print(f"compile seconds: {results['compile_seconds']}")
    print(f"wrote {RESULTS / 'model.json'} and {RESULTS / 'model.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
