"""The headline figures of `make bench`: taken from the parts' results and written as
bench/results/summary.{json,md}, each checked against its target (bench/targets.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from bench import targets

logger = logging.getLogger("bench")

CPU_CONFIGS = ("720p_hologram", "720p_none", "1080p_hologram", "1080p_none")
TARGETS = targets.SUMMARY


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
    cpu, model, kernels, sink, pipeline, transport, native, matte = (
        results.get(p) for p in ("cpu", "model", "kernels", "sink", "pipeline", "transport", "native", "matte"))
    cpu_avx2 = results.get("cpu_avx2") if not (results.get("cpu_avx2") or {}).get("skipped") else None
    general_1t = lambda r: next(c for c in r["cases"] if c["model"] == "selfie" and c["threads"] == 1)  # noqa: E731
    sink_720 = lambda r: next(s for s in r["sizes"] if s["size"] == "1280x720")  # noqa: E731
    figures = {
        **{f"cpu_ms_per_frame_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["cpu_ms_per_frame"]) for k in CPU_CONFIGS},
        **{f"cpu_core_pct_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["core_pct"]) for k in CPU_CONFIGS},
        **{f"seed_cpu_ms_per_frame_{k}": _dig(cpu, lambda r, k=k: r["configs"][k]["seed_cpu_ms_per_frame"])
           for k in CPU_CONFIGS},
        **{f"cpu_ms_per_frame_{k}_avx2": _dig(cpu_avx2, lambda r, k=k: r["configs"][k]["cpu_ms_per_frame"])
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
                                               "inferences_per_frame": v["holocam"]["inferences_per_frame"],
                                               "rounds": v["holocam"].get("rounds_cpu_ms_per_frame")}
                                           for k, v in r["configs"].items()}),
        "cpu_machine": _dig(cpu, lambda r: r["machine"]),
        "inference_live_vs_isolated": _dig(cpu, lambda r: r["inference_live_vs_isolated"]),
        "motion_skip": _dig(cpu, lambda r: r["motion_skip"]),
        "matte_iou_mean": _dig(matte, lambda r: {f"{row['aspect']} {row['model']}": row["iou_mean"] for row in r["rows"]}),
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
        "native_builds": _dig(native, lambda r: r["rows"]),
        "cpu_configs_avx2": _dig(cpu_avx2, lambda r: {k: {"holocam": v["holocam"]["cpu_ms_per_frame"],
                                                         "holocam_core_pct": v["holocam"]["core_pct"]}
                                                     for k, v in r["configs"].items()}),
        "cpu_avx2_machine": _dig(cpu_avx2, lambda r: r["machine"]),
    }
    met = {key: targets.met(key, figures[key]) for key in TARGETS}
    return {**{k: _round(v) for k, v in figures.items()}, "details": details,
            "targets": {k: {"target": t.value, "kind": t.kind} for k, t in TARGETS.items()}, "met": met}


def fmt(value: object, unit: str = "") -> str:
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
        ("cpu_ms_per_frame_720p_hologram_avx2", "the same, 720p30 hologram, run at AVX2 (native builds forced, libraries capped)",
         "cpu.png"),
        ("cpu_ms_per_frame_1080p_hologram_avx2", "the same, 1080p30 hologram, run at AVX2 (native builds forced, libraries capped)",
         "cpu.png"),
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
        lines.append(f"| {text} (`{key}`) | {fmt(summary.get(key))} | {TARGETS[key].label} | {mark[summary['met'].get(key)]} | "
                     f"[{png}]({png}) |")
    lines += [""]
    if d.get("cpu_configs"):
        lines += ["CPU per output frame (user + system of the sink and its segmenter, paced 30 fps MJPEG file "
                  "decoded by the sink, default settings, the median of 3 interleaved 8 s windows; the seed's loop on the same frames, its lower CPU of "
                  "torch's default threads and 1 thread):", "",
                  "| configuration | holocam CPU ms/frame | % of one core | seed CPU ms/frame | seed % core | "
                  "holocam / seed | target | met |", "|---|---:|---:|---:|---:|---:|---:|:---:|"]
        limits = targets.CPU_MS_PER_FRAME
        for key, row in d["cpu_configs"].items():
            limit = limits.get(key)
            ok = row["ratio_vs_seed"] <= targets.CPU_RATIO_VS_SEED and (limit is None or row["holocam"]["total"] <= limit)
            spread = f"; rounds {', '.join(fmt(x) for x in row['rounds'])}" if row.get("rounds") else ""
            lines.append(f"| {key} | {fmt(row['holocam']['total'])} (sink {fmt(row['holocam']['sink'])} + "
                         f"segmenter {fmt(row['holocam']['segmenter'])}{spread}) | {fmt(row['holocam_core_pct']['total'])}% | "
                         f"{fmt(row['seed'])} | {fmt(row['seed_core_pct'])}% | {fmt(row['ratio_vs_seed'])} | "
                         + (f"≤ {limit:.0f} ms and " if limit else "") + f"{TARGETS['cpu_worst_ratio_vs_seed'].label} x seed | {mark[ok]} |")
        m = d.get("cpu_machine") or {}
        lines += ["", f"CPU {m.get('cpu')}: avx512f {m.get('avx512f')}, avx2 {m.get('avx2')}; kernels "
                      f"{m.get('kernels_env')}, build loaded: {m.get('kernel_build')}; sink and segmenter log: "
                      f"{'; '.join(m.get('segmenter_kernel_log') or []) or '(no kernel line)'}."]
        live = d.get("inference_live_vs_isolated") or {}
        if live.get("ratio") is not None:
            lines.append(f"- Segmenter inference inside the running pipeline {fmt(live['live_ms_median_720p'])} ms "
                         f"(median, 720p) vs the model alone {fmt(live['isolated_ms_median'])} ms: "
                         f"{fmt(live['ratio'])}x (target ≤ {targets.INFERENCE_LIVE_VS_ISOLATED}x)"
                         + (f"; the model alone fed one frame per source period {fmt(live['isolated_paced_ms_median'])} ms: "
                            f"{fmt(live['ratio_vs_paced_alone'])}x" if live.get("ratio_vs_paced_alone") is not None else "")
                         + ".")
        for name, row in (d.get("motion_skip") or {}).items():
            lines.append(f"- Motion skip, {name.replace('_', ' ')}: {row['inferences']} inferences for "
                         f"{row['frames']} frames ({fmt(row['saved_pct'])}% saved), IoU of the masks used vs "
                         f"segmenting every frame mean {row['iou_vs_every_frame_mean']}, min {row['iou_vs_every_frame_min']}"
                         + (f" (the model's own frame-to-frame IoU there: {row['model_own_frame_to_frame_iou_mean']})"
                            if "model_own_frame_to_frame_iou_mean" in row else "") + ".")
        if d.get("matte_iou_mean"):
            lines.append("- Mask IoU against a known matte (bench/results/matte.md), mean: "
                         + ", ".join(f"{k} {v}" for k, v in d["matte_iou_mean"].items()) + ".")
        lines.append("")
    if d.get("cpu_configs_avx2"):
        lines += ["", "Same CPU, same run, at AVX2 (`bench.machine.AVX2_ONLY_ENV`, the instruction set of an "
                      "AVX2-only CPU): the segmenter's kernels and the sink's native passes forced to their AVX2 "
                      "builds, stock torch (ATen, oneDNN, MKL), OpenCV and NumPy capped at AVX2; the "
                      "microarchitecture stays this CPU's:", "",
                  "| configuration | holocam CPU ms/frame | % of one core | target | met |", "|---|---:|---:|---:|:---:|"]
        for key, row in d["cpu_configs_avx2"].items():
            limit = targets.CPU_MS_PER_FRAME.get(key)
            ok = None if limit is None else row["holocam"]["total"] <= limit
            lines.append(f"| {key} | {fmt(row['holocam']['total'])} (sink {fmt(row['holocam']['sink'])} + "
                         f"segmenter {fmt(row['holocam']['segmenter'])}) | "
                         f"{fmt(row['holocam_core_pct']['total'])}% | "
                         + (f"≤ {limit:.0f} ms | {mark[ok]} |" if limit else "— | — |"))
        lines.append("")
    fps = d.get("pipeline_fps") or {}
    if fps:
        lines.append(f"- Pipeline FPS (uncapped, 1280x720, median of rounds): seed {fmt(fps.get('seed'))} "
                     f"({d.get('seed_baseline')}), holocam {fmt(fps.get('ours_wait'))} with the default pacing "
                     f"(`wait`: each frame gets its own mask), {fmt(fps.get('ours_latest'))} with `latest` "
                     f"({fmt(d.get('pipeline_fps_ratio_latest_vs_seed'))}x).")
    if d.get("latency_p50_ms") is not None:
        seed = d.get("seed_latency_ms") or {}
        lines.append(f"- Latency at a 30 fps source: p50 {fmt(d['latency_p50_ms'])} ms, p95 "
                     f"{fmt(summary['latency_p95_ms'])} ms to the converted output frame (through the steady "
                     f"writer); p95 {fmt(d.get('latency_to_writer_p95_ms'))} ms to the hand-off to the writer. "
                     f"Seed: p50 {fmt(seed.get('median'))} ms, p95 {fmt(seed.get('p95'))} ms.")
    if d.get("rss_mb"):
        lines.append("- Memory (VmRSS / peak VmHWM, MB): " + ", ".join(
            f"{k} {v} / {d['peak_rss_mb'][k]}" for k, v in d["rss_mb"].items())
            + " (the sink's includes the benchmark's 16-frame bank, ~42 MB).")
    if d.get("torch_ms_general_1_thread") is not None:
        stock = d.get("torch_stock_ms_general_1_thread")
        lines.append(f"- Model, general, 1 thread: torch {fmt(d['torch_ms_general_1_thread'])} ms "
                     f"(fused kernels: {d.get('fused_kernels') or 'not loaded'}"
                     + (f"; {fmt(stock)} ms on stock torch ops" if stock is not None else "")
                     + f"), LiteRT {fmt(d['litert_ms_general_1_thread'])} ms per frame.")
    if d.get("cpu_bound_two_replica_speedup") is not None:
        lines.append(f"- Two replicas x 1 thread vs one on this machine: "
                     f"{fmt(d['cpu_bound_two_replica_speedup'])}x.")
    builds = [row for row in d.get("kernel_builds") or [] if "skipped" not in row]
    if builds:
        lines.append("- Fused kernels per build on this CPU, 1 thread ([kernels.md](kernels.md)): " + "; ".join(
            f"{row['variant']} {row['model']} {fmt(row['fused_ms'])} ms vs stock {fmt(row['stock_ms'])} ms "
            f"({fmt(row['fused_speedup_vs_stock'])}x), {fmt(row['fused_over_litert'])} of LiteRT" for row in builds)
            + "; " + ", ".join(f"{row['build']}: {row['skipped']}" for row in d["kernel_builds"] if "skipped" in row)
            + ".")
    native_rows = [row for row in d.get("native_builds") or [] if "skipped" not in row]
    if native_rows:
        lines.append("- Sink native passes per build on this CPU, 1 thread ([native.md](native.md)): " + "; ".join(
            f"{row['build']} {row['size']} {row['pass']} {fmt(row['native_ms'])} ms vs OpenCV "
            f"{fmt(row['opencv_ms'])} ms ({fmt(row['speedup'])}x)" for row in native_rows) + ".")
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
        "Details: `cpu.json`, `cpu_avx2.json`, `model.json`, `kernels.json`, `native.json`, `sink.json`, "
        "`pipeline.json`, `transport.json`; profiles: "
        "[profiles.md](profiles.md); how each part measures: [bench/README.md](../README.md).", ""]
    path.write_text("\n".join(lines) + "\n")
