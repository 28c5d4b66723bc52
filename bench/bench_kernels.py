"""Every fused-kernel build on this CPU: fused vs stock torch ops vs LiteRT, both models, 1 thread.

    python bench/bench_kernels.py            # bench/results/kernels.{json,png,md}
    python bench/bench_kernels.py --quick    # fewer runs (a smoke check)

The library holds three builds (avx512, avx2, generic) and picks one per CPU; a build is only
worth shipping where it beats stock ops on the CPUs that run it. Each build this CPU can run gets
a fresh process (HOLOCAM_KERNELS_ISA picks it before the library loads) that times the fused
model, the same model on stock torch ops and LiteRT in turns. The generic build runs on CPUs
without AVX2, where stock torch has no AVX2 either: its row "generic, stock without AVX" also
caps ATen, oneDNN and MKL at SSE4 (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS),
which is the fair comparison for the CPUs that build serves. On an AVX-512 CPU the avx2 build also
gets a row "avx2, stock at AVX2" (bench.machine.STOCK_AT_AVX2), stock torch as an AVX2-only CPU
runs it; its plain row keeps stock at AVX-512, the harder comparison. LiteRT (XNNPACK) cannot be
capped: it uses AVX-512 in every row of an AVX-512 CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from shared.native_build import cpu_runs  # noqa: E402
from bench.machine import NO_AVX_STOCK, STOCK_AT_AVX2, describe  # noqa: E402

RESULTS = REPO / "bench" / "results"
MODELS = ("selfie", "selfie-landscape")
ISAS = ("avx512", "avx2", "generic")


def child(runs: int, warmup: int) -> dict:
    """In a process whose environment chose the build: time the three runners per model."""
    import torch

    from bench.bench_model import _litert_runner, _time_in_turns
    from segmenter.kernels import load
    from segmenter.model.selfie import SELFIE_SPECS, load_selfie
    from shared.resize import prepare_input
    import skimage.data

    torch.set_num_threads(1)
    cases = []
    for name in MODELS:
        rgb = prepare_input(skimage.data.astronaut(), SELFIE_SPECS[name], bgr=False)
        runners = {"fused": load_selfie(name, kernels=True).segment,
                   "stock": load_selfie(name, kernels=False).segment,
                   "litert": _litert_runner(name, 1)}
        stats = _time_in_turns(runners, rgb, warmup, runs)
        fused, stock, litert = (stats[k]["median_ms"] for k in ("fused", "stock", "litert"))
        cases.append({"model": name, "fused_ms": fused, "stock_ms": stock, "litert_ms": litert,
                      "fused_speedup_vs_stock": stock / fused, "fused_over_litert": fused / litert,
                      "stock_over_litert": stock / litert})
    return {"build": load(), "cases": cases}


def _run_child(isa: str, extra_env: dict[str, str], quick: bool) -> dict:
    env = {**os.environ, "HOLOCAM_KERNELS": "1", "HOLOCAM_KERNELS_ISA": isa, **extra_env,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the {isa} run failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    rows = []
    for isa in ISAS:
        if not cpu_runs(isa):
            rows.append({"build": isa, "skipped": "this CPU cannot run it"})
            continue
        variants = [("", {})]
        if isa == "generic":
            variants.append((", stock without AVX", NO_AVX_STOCK))
        elif isa == "avx2" and cpu_runs("avx512"):
            variants.append((", stock at AVX2", STOCK_AT_AVX2))
        for label, extra in variants:
            result = _run_child(isa, extra, quick)
            for case in result["cases"]:
                rows.append({"build": result["build"], "variant": isa + label, **case})
    results = {"command": "python bench/bench_kernels.py" + (" --quick" if quick else ""),
               "what": "ms per mask (uint8 RGB at model size -> uint8 mask), 1 thread, medians, runners in turns",
               "machine": describe(), "rows": rows}
    report.write("kernels", results, markdown, _plot)
    return results


def markdown(results: dict) -> str:
    return report.build_table(
        results, "Fused kernels per build",
        ["build", "model", "fused ms", "stock ms", "LiteRT ms", "fused vs stock", "fused / LiteRT"],
        lambda r: [r["variant"], r["model"], f"{r['fused_ms']:.2f}", f"{r['stock_ms']:.2f}", f"{r['litert_ms']:.2f}",
                   f"{r['fused_speedup_vs_stock']:.2f}x", f"{r['fused_over_litert']:.2f}"])


def _plot(results: dict, path: Path) -> None:
    report.build_bars(results, path, [("fused_ms", "fused kernels"), ("stock_ms", "stock torch ops"),
                                      ("litert_ms", "LiteRT")],
                      lambda r: r["variant"].replace(", ", ",\n") + "\n" + r["model"],
                      "ms per mask (1 thread)", "Kernel builds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs (a smoke check)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs, warmup = (40, 10) if args.quick else (200, 30)
    if args.child:
        print(json.dumps(child(runs, warmup)))
        return 0
    print(markdown(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
