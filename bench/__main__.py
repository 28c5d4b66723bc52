"""`make bench`: every benchmark in one run, and the headline figures in bench/results/summary.{json,md}.

    python -m bench                      # the full run, about 7 minutes on the 2-core dev VM
    python -m bench --quick              # a smoke run (about 2 minutes; figures not for quoting)
    python -m bench --only pipeline      # some parts only (model, sink, pipeline, transport)
    python -m bench --no-profile         # skip the py-spy profiles of the pipeline

Parts (each writes its own JSON + PNG into bench/results/, see bench/README.md):
cpu (bench_cpu: CPU ms per output frame of sink + segmenter at a paced 30 fps MJPEG source, vs
the seed's loop: the headline figures), model (bench_model: torch port vs LiteRT), kernels
(bench_kernels: every fused-kernel build this CPU runs vs stock ops and LiteRT), sink
(bench_sink: sink stages vs the seed's), pipeline (bench_pipeline: whole pipeline vs the seed's
loop, latency, memory, profiles), transport (bench_transport: replica scaling, bytes on the wire),
gpu (bench_gpu: ms per mask and masks/s per replica at batch 1 and 4 on CUDA; records why it
skipped where there is no GPU).
Their printed output goes to bench/results/bench.log; a progress bar shows on stderr. A part that
fails is recorded in the summary (its figures are null) and the others still run; the exit status
is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import machine, targets  # noqa: E402

logger = logging.getLogger("bench")

RESULTS = REPO / "bench" / "results"
PARTS = ("cpu", "model", "kernels", "sink", "pipeline", "transport", "gpu")
CPU_CONFIGS = ("720p_hologram", "720p_none", "1080p_hologram", "1080p_none")
TARGETS = targets.SUMMARY


class Progress:
    """A tqdm bar over the run's steps (a plain stderr line per step without tqdm)."""

    def __init__(self, total: int) -> None:
        self.started = time.monotonic()
        try:
            from tqdm import tqdm
            self._bar = tqdm(total=total, file=sys.stderr, unit="step", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
        except ImportError:
            self._bar = None
            self._done, self._total = 0, total

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)
        else:
            print(f"[{time.monotonic() - self.started:6.0f} s] {text} ...", file=sys.stderr, flush=True)

    def step(self, text: str = "") -> None:
        if self._bar is not None:
            if text:
                self._bar.set_description_str(text)
            self._bar.update(1)
        else:
            self._done += 1
            print(f"[{time.monotonic() - self.started:6.0f} s] {self._done}/{self._total} {text}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _run_isolated(name: str, quick: bool, log: Path) -> dict:
    """Run bench_<name>.run() in a fresh Python and read the JSON it wrote.

    Each part gets its own process: a part may tune its process (bench_model sets glibc's malloc
    thresholds, torch loads OpenMP threads), and that must not change the next part's figures
    (measured: the malloc tuning alone made the seed's sink stages 2x faster in bench_sink).
    """
    out = RESULTS / f"{name}.json"
    started = time.time()
    code = f"from bench import bench_{name} as part; part.run(quick={quick!r})"
    with log.open("a") as log_file:
        log_file.write(f"\n==== {name} ====\n")
        log_file.flush()
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"bench_{name} exited with {proc.returncode} (its output is in {log})")
    if not out.exists() or out.stat().st_mtime < started:
        raise RuntimeError(f"bench_{name} did not write {out}")
    return json.loads(out.read_text())


def _run_part(name: str, quick: bool, profile: bool, progress: Progress, log: Path) -> dict:
    if name == "pipeline":   # this process only drives the pipeline's own child processes
        from bench import bench_pipeline
        return bench_pipeline.run(quick=quick, profile=profile, progress=progress.step)
    return _run_isolated(name, quick, log)


def _steps(name: str, quick: bool, profile: bool) -> int:
    if name == "pipeline":
        from bench import bench_pipeline
        return bench_pipeline.steps(quick, profile)
    return 1


# ---- the headline figures -------------------------------------------------------------------
def _dig(result: dict | None, fn: Callable[[dict], object]) -> object:
    """fn(result), or None when the part did not run or its result lacks the field."""
    if not result:
        return None
    try:
        return fn(result)
    except (KeyError, IndexError, TypeError, StopIteration):
        logger.warning("W: a summary field is missing from a part's result", exc_info=True)
        return None


def _round(value: object, digits: int = 3) -> object:
    return round(value, digits) if isinstance(value, float) else value


def headline(results: dict[str, dict | None]) -> dict:
    """The summary figures, each taken from this run's part results."""
    cpu, model, kernels, sink, pipeline, transport = (
        results.get(p) for p in ("cpu", "model", "kernels", "sink", "pipeline", "transport"))
    general_1t = lambda r: next(c for c in r["cases"] if c["model"] == "selfie" and c["threads"] == 1)  # noqa: E731
    sink_720 = lambda r: next(s for s in r["sizes"] if s["size"] == "1280x720")  # noqa: E731
    figures = {
        **{f"cpu_ms_per_frame_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["cpu_ms_per_frame"]) for k in CPU_CONFIGS},
        **{f"cpu_core_pct_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["core_pct"]) for k in CPU_CONFIGS},
        **{f"seed_cpu_ms_per_frame_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["seed_cpu_ms_per_frame"])
           for k in CPU_CONFIGS},
        "cpu_worst_ratio_vs_seed": _dig(cpu, lambda r: max(r["configs"][k]["ratio_vs_seed"] for k in CPU_CONFIGS)),
        "torch_over_litert": _dig(model, lambda r: general_1t(r)["ratio_fast_to_litert"]),
        "sink_speedup_vs_seed": _dig(sink, lambda r: sink_720(r)["chain_speedup"]),
        "pipeline_fps_ratio_vs_seed": _dig(pipeline, lambda r: r["fps_ratio_vs_seed"]),
        "latency_p95_ms": _dig(pipeline, lambda r: r["latency_p95_ms"]),
        "replica_scaling_efficiency": _dig(transport, lambda r: r["latency_bound"]["min_efficiency"]),
    }
    details = {
        "cpu_configs": _dig(cpu, lambda r: {k: {"holocam": v["holocam"]["cpu_ms_per_frame"],
                                               "holocam_core_pct": v["holocam"]["core_pct"],
                                               "seed": v["seed_cpu_ms_per_frame"], "seed_core_pct": v["seed_core_pct"],
                                               "ratio_vs_seed": v["ratio_vs_seed"],
                                               "inferences_per_frame": v["holocam"]["inferences_per_frame"]}
                                           for k, v in r["configs"].items()}),
        "cpu_machine": _dig(cpu, lambda r: r["machine"]),
        "inference_live_vs_isolated": _dig(cpu, lambda r: r["inference_live_vs_isolated"]),
        "motion_skip": _dig(cpu, lambda r: r["motion_skip"]),
        "torch_ms_general_1_thread": _dig(model, lambda r: general_1t(r)["torch_fast"]["median_ms"]),
        "litert_ms_general_1_thread": _dig(model, lambda r: general_1t(r)["litert"]["median_ms"]),
        "torch_stock_ms_general_1_thread": _dig(model, lambda r: general_1t(r)["torch_stock"]["median_ms"]),
        "fused_kernels": _dig(model, lambda r: r["machine"].get("fused_kernels")),
        "sink_chain_ms_720p": _dig(sink, lambda r: {"ours": sink_720(r)["chain_ours_ms"],
                                                     "seed": sink_720(r)["chain_seed_ms"]}),
        "sink_stage_sum_speedup_720p": _dig(sink, lambda r: sink_720(r)["sum_speedup"]),
        "pipeline_fps": _dig(pipeline, lambda r: r["fps_median"]),
        "pipeline_fps_ratio_latest_vs_seed": _dig(pipeline, lambda r: r["fps_ratio_latest_vs_seed"]),
        "seed_baseline": _dig(pipeline, lambda r: r["seed_baseline"]),
        "latency_p50_ms": _dig(pipeline, lambda r: r["latency_p50_ms"]),
        "latency_to_writer_p95_ms": _dig(pipeline, lambda r: r["latency_handoff_p95_ms"]),
        "seed_latency_ms": _dig(pipeline, lambda r: r["latency_30fps"]["seed"]["latency_output_ms"]),
        "rss_mb": _dig(pipeline, lambda r: {k: v["VmRSS"] for k, v in r["memory_mb"].items()}),
        "peak_rss_mb": _dig(pipeline, lambda r: {k: v["VmHWM"] for k, v in r["memory_mb"].items()}),
        "cpu_bound_two_replica_speedup": _dig(transport, lambda r: r["cpu_bound"]["speedup"]),
        "kernel_builds": _dig(kernels, lambda r: r["rows"]),
    }
    met = {key: targets.met(key, figures[key]) for key in TARGETS}
    return {**{k: _round(v) for k, v in figures.items()}, "details": details,
            "targets": {k: {"target": t.value, "kind": t.kind} for k, t in TARGETS.items()}, "met": met}


def _fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}{unit}"
    return f"{value}{unit}"


def write_markdown(summary: dict, path: Path) -> None:
    d = summary["details"]
    mark = {True: "yes", False: "**no**", None: "—"}
    rows = [
        ("cpu_ms_per_frame_720p_hologram", "CPU ms per output frame, all processes, 720p30 hologram", "cpu.png"),
        ("cpu_ms_per_frame_1080p_hologram", "CPU ms per output frame, all processes, 1080p30 hologram", "cpu.png"),
        ("cpu_worst_ratio_vs_seed", "worst of the 4 configurations, holocam CPU / seed CPU per frame", "cpu.png"),
        ("torch_over_litert", "torch port / LiteRT time, general model, 1 thread", "model.png"),
        ("sink_speedup_vs_seed", "sink stages at 720p, seed time / ours (whole chain)", "sink.png"),
        ("pipeline_fps_ratio_vs_seed", "whole pipeline, uncapped 720p FPS, ours / seed", "pipeline.png"),
        ("latency_p95_ms", "capture → output p95 at a 30 fps source, ms", "pipeline.png"),
        ("replica_scaling_efficiency", "replica scaling efficiency (worst N ≤ 8)", "transport.png"),
    ]
    lines = [
        "# holocam benchmark summary", "",
        f"`{summary['command']}` on {summary['machine']['cpu']} ({summary['machine']['cores']} cores; avx512f "
        f"{summary['machine']['avx512f']}, avx2 {summary['machine']['avx2']}; kernels "
        f"{summary['machine']['kernels_env']['HOLOCAM_KERNELS']}, build {summary['machine']['kernel_build']}), "
        f"{summary['started']}, {summary['duration_s']:.0f} s"
        + (" — **quick run: smoke figures, not for quoting**" if summary["quick"] else "") + ".",
        f"Load average at start {summary['load_average']['start']:.2f}, at end {summary['load_average']['end']:.2f}. "
        + summary["note"], "",
        "| figure | this run | target | met | plot |", "|---|---:|---:|:---:|---|",
    ]
    for key, text, png in rows:
        lines.append(f"| {text} (`{key}`) | {_fmt(summary[key])} | {TARGETS[key].label} | {mark[summary['met'][key]]} | "
                     f"[{png}]({png}) |")
    lines += [""]
    if d.get("cpu_configs"):
        lines += ["CPU per output frame (user + system of the sink and its segmenter, paced 30 fps MJPEG file "
                  "decoded by the sink, default settings; the seed's loop on the same frames, its lower CPU of "
                  "torch's default threads and 1 thread):", "",
                  "| configuration | holocam CPU ms/frame | % of one core | seed CPU ms/frame | seed % core | "
                  "holocam / seed | target | met |", "|---|---:|---:|---:|---:|---:|---:|:---:|"]
        limits = targets.CPU_MS_PER_FRAME
        for key, row in d["cpu_configs"].items():
            limit = limits.get(key)
            ok = row["ratio_vs_seed"] <= targets.CPU_RATIO_VS_SEED and (limit is None or row["holocam"]["total"] <= limit)
            lines.append(f"| {key} | {_fmt(row['holocam']['total'])} (sink {_fmt(row['holocam']['sink'])} + "
                         f"segmenter {_fmt(row['holocam']['segmenter'])}) | {_fmt(row['holocam_core_pct']['total'])}% | "
                         f"{_fmt(row['seed'])} | {_fmt(row['seed_core_pct'])}% | {_fmt(row['ratio_vs_seed'])} | "
                         + (f"≤ {limit:.0f} ms and " if limit else "") + f"{TARGETS['cpu_worst_ratio_vs_seed'].label} x seed | {mark[ok]} |")
        m = d.get("cpu_machine") or {}
        lines += ["", f"CPU {m.get('cpu')}: avx512f {m.get('avx512f')}, avx2 {m.get('avx2')}; kernels "
                      f"{m.get('kernels_env')}, build loaded: {m.get('kernel_build')}; segmenter log: "
                      f"{'; '.join(m.get('segmenter_kernel_log') or []) or '(no kernel line)'}."]
        live = d.get("inference_live_vs_isolated") or {}
        if live.get("ratio") is not None:
            lines.append(f"- Segmenter inference inside the running pipeline {_fmt(live['live_ms_median_720p'])} ms "
                         f"(median, 720p) vs the model alone {_fmt(live['isolated_ms_median'])} ms: "
                         f"{_fmt(live['ratio'])}x (target ≤ {targets.INFERENCE_LIVE_VS_ISOLATED}x).")
        for name, row in (d.get("motion_skip") or {}).items():
            lines.append(f"- Motion skip, {name.replace('_', ' ')}: {row['inferences']} inferences for "
                         f"{row['frames']} frames ({_fmt(row['saved_pct'])}% saved), IoU of the masks used vs "
                         f"segmenting every frame mean {row['iou_vs_every_frame_mean']}, min {row['iou_vs_every_frame_min']}"
                         + (f" (the model's own frame-to-frame IoU there: {row['model_own_frame_to_frame_iou_mean']})"
                            if "model_own_frame_to_frame_iou_mean" in row else "") + ".")
        lines.append("")
    fps = d.get("pipeline_fps") or {}
    if fps:
        lines.append(f"- Pipeline FPS (uncapped, 1280x720, median of rounds): seed {_fmt(fps.get('seed'))} "
                     f"({d.get('seed_baseline')}), holocam {_fmt(fps.get('ours_wait'))} with the default pacing "
                     f"(`wait`: each frame gets its own mask), {_fmt(fps.get('ours_latest'))} with `latest` "
                     f"({_fmt(d.get('pipeline_fps_ratio_latest_vs_seed'))}x).")
    if d.get("latency_p50_ms") is not None:
        seed = d.get("seed_latency_ms") or {}
        lines.append(f"- Latency at a 30 fps source: p50 {_fmt(d['latency_p50_ms'])} ms, p95 "
                     f"{_fmt(summary['latency_p95_ms'])} ms to the converted output frame (through the steady "
                     f"writer); p95 {_fmt(d.get('latency_to_writer_p95_ms'))} ms to the hand-off to the writer. "
                     f"Seed: p50 {_fmt(seed.get('median'))} ms, p95 {_fmt(seed.get('p95'))} ms.")
    if d.get("rss_mb"):
        lines.append("- Memory (VmRSS / peak VmHWM, MB): " + ", ".join(
            f"{k} {v} / {d['peak_rss_mb'][k]}" for k, v in d["rss_mb"].items())
            + " (the sink's includes the benchmark's 16-frame bank, ~42 MB).")
    if d.get("torch_ms_general_1_thread") is not None:
        stock = d.get("torch_stock_ms_general_1_thread")
        lines.append(f"- Model, general, 1 thread: torch {_fmt(d['torch_ms_general_1_thread'])} ms "
                     f"(fused kernels: {d.get('fused_kernels') or 'not loaded'}"
                     + (f"; {_fmt(stock)} ms on stock torch ops" if stock is not None else "")
                     + f"), LiteRT {_fmt(d['litert_ms_general_1_thread'])} ms per frame.")
    if d.get("cpu_bound_two_replica_speedup") is not None:
        lines.append(f"- Two replicas x 1 thread vs one on this machine: "
                     f"{_fmt(d['cpu_bound_two_replica_speedup'])}x.")
    builds = [row for row in d.get("kernel_builds") or [] if "skipped" not in row]
    if builds:
        lines.append("- Fused kernels per build on this CPU, 1 thread ([kernels.md](kernels.md)): " + "; ".join(
            f"{row['variant']} {row['model']} {_fmt(row['fused_ms'])} ms vs stock {_fmt(row['stock_ms'])} ms "
            f"({_fmt(row['fused_speedup_vs_stock'])}x), {_fmt(row['fused_over_litert'])} of LiteRT" for row in builds)
            + "; " + ", ".join(f"{row['build']}: {row['skipped']}" for row in d["kernel_builds"] if "skipped" in row)
            + ".")
    gpu = summary.get("gpu")
    if gpu and gpu.get("skipped"):
        lines.append(f"- GPU segmenter: skipped ({gpu['skipped']}).")
    elif gpu:
        best = {c["batch"]: c for c in gpu["cases"] if c["model"] == "selfie" and c["device"].endswith("fp16")} \
            or {c["batch"]: c for c in gpu["cases"] if c["model"] == "selfie"}
        lines.append(f"- GPU segmenter on {gpu['gpu']}, general model: " + ", ".join(
            f"batch {b}: {c['ms_per_mask']} ms/mask, {c['masks_per_s']} masks/s" for b, c in sorted(best.items()))
            + " ([gpu.png](gpu.png)).")
    lines += ["", "Parts: " + ", ".join(
        f"{name} {part['seconds']:.0f} s" + ("" if part["ok"] else f" (**failed**: {part['error']})")
        for name, part in summary["parts"].items()) + ".",
        "Details: `cpu.json`, `model.json`, `kernels.json`, `sink.json`, `pipeline.json`, `transport.json`; profiles: "
        "[profiles.md](profiles.md); how each part measures: [bench/README.md](../README.md).", ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short measurements: a smoke run")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default all: {','.join(PARTS)})")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}: choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_path = RESULTS / "bench.log"
    log_path.write_text("")
    log_file = log_path.open("a")   # append mode: the parts' processes append to the same file
    logging.basicConfig(level=logging.INFO, stream=log_file, format="%(asctime)s %(levelname).1s %(name)s: %(message)s")
    started, load_start = time.monotonic(), os.getloadavg()[0]
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    profile = not args.no_profile
    progress = Progress(sum(_steps(p, args.quick, profile) for p in parts))
    results: dict[str, dict | None] = {}
    part_info: dict[str, dict] = {}
    try:
        for name in parts:
            progress.describe(name)
            t0 = time.monotonic()
            try:
                log_file.flush()
                with contextlib.redirect_stdout(log_file):
                    results[name] = _run_part(name, args.quick, profile, progress, log_path)
                log_file.flush()
                part_info[name] = {"ok": True, "seconds": round(time.monotonic() - t0, 1), "error": None}
            except Exception as exc:  # the other parts still run; the summary records the failure
                results[name] = None
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                part_info[name] = {"ok": False, "seconds": round(time.monotonic() - t0, 1), "error": message}
                log_file.write(traceback.format_exc())
                print(f"\n{name} failed: {message} (traceback in {log_path})", file=sys.stderr)
            if name != "pipeline":
                progress.step(f"{name} done")
    finally:
        progress.close()
        log_file.flush()
    summary = {
        "command": "python -m bench" + (f" {' '.join(argv if argv is not None else sys.argv[1:])}"
                                        if (argv if argv is not None else sys.argv[1:]) else ""),
        "started": stamp,
        "duration_s": round(time.monotonic() - started, 1),
        "quick": args.quick,
        "machine": machine.describe(kernel_build=machine.loaded_kernel_build()),
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "note": ("Every figure comes from this run; ratios are against baselines measured in the same run. "
                 "The dev VM's 2 cores may be shared with other work: see the load averages."),
        **headline(results),
        "gpu": results.get("gpu"),
        "parts": part_info,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_markdown(summary, RESULTS / "summary.md")
    log_file.close()
    print(f"wrote {RESULTS / 'summary.md'} and summary.json ({summary['duration_s']:.0f} s)")
    for key in TARGETS:
        print(f"  {key:28s} {_fmt(summary[key]):>8s}   target {TARGETS[key].kind} {TARGETS[key].value}   "
              f"met: {summary['met'][key]}")
    return 0 if all(p["ok"] for p in part_info.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
