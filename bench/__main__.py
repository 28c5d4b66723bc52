"""`make bench`: every benchmark in one run, and the headline figures in bench/results/summary.{json,md}.

    python -m bench                      # the full run, about 7 minutes on the 2-core dev VM
    python -m bench --quick              # a smoke run (about 2 minutes; figures not for quoting)
    python -m bench --only pipeline      # some parts only (model, sink, pipeline, transport)
    python -m bench --no-profile         # skip the py-spy profiles of the pipeline

Parts (each writes its own JSON + PNG into bench/results/, see bench/README.md):
cpu (bench_cpu: CPU ms per output frame of sink + segmenter at a paced 30 fps MJPEG source, vs
the seed's loop: the headline figures), cpu_avx2 (the same on an AVX-512 CPU run at AVX2, the
common CPU's instruction set: native builds forced, torch, OpenCV and NumPy capped; skipped elsewhere), native (bench_native: the sink's native
passes per build vs OpenCV), matte (bench_matte: each selfie model's mask against a known
matte on 16:9 and 4:3 frames, why selfie-auto is the default), model (bench_model: torch port vs LiteRT), kernels
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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import machine, targets  # noqa: E402
from bench.summary import fmt, headline, write_markdown  # noqa: E402

logger = logging.getLogger("bench")

RESULTS = REPO / "bench" / "results"
PARTS = ("cpu", "cpu_avx2", "model", "kernels", "native", "matte", "sink", "pipeline", "transport", "gpu")
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


def _run_isolated(name: str, quick: bool, log: Path, code: str | None = None, env: dict | None = None) -> dict:
    """Run bench_<name>.run() in a fresh Python and read the JSON it wrote.

    Each part gets its own process: a part may tune its process (bench_model sets glibc's malloc
    thresholds, torch loads OpenMP threads), and that must not change the next part's figures
    (measured: the malloc tuning alone made the seed's sink stages 2x faster in bench_sink).
    """
    out = RESULTS / f"{name}.json"
    started = time.time()
    code = code or f"from bench import bench_{name} as part; part.run(quick={quick!r})"
    with log.open("a") as log_file:
        log_file.write(f"\n==== {name} ====\n")
        log_file.flush()
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise RuntimeError(f"bench_{name} exited with {proc.returncode} (its output is in {log})")
    if not out.exists() or out.stat().st_mtime < started:
        raise RuntimeError(f"bench_{name} did not write {out}")
    return json.loads(out.read_text())


def _run_part(name: str, quick: bool, profile: bool, progress: Progress, log: Path) -> dict:
    if name == "pipeline":   # this process only drives the pipeline's own child processes
        from bench import bench_pipeline
        return bench_pipeline.run(quick=quick, profile=profile, progress=progress.step)
    if name == "cpu_avx2":
        if not machine.describe()["avx512f"]:
            return {"skipped": "this CPU has no AVX-512: the cpu part already ran the AVX2 builds"}
        code = (f"from bench import bench_cpu as part; part.run(quick={quick!r}, seed=False, extras=False, "
                f"out_name='cpu_avx2', profile=False)")
        return _run_isolated(name, quick, log, code=code, env=machine.AVX2_ONLY_ENV)
    return _run_isolated(name, quick, log)


def _steps(name: str, quick: bool, profile: bool) -> int:
    if name == "pipeline":
        from bench import bench_pipeline
        return bench_pipeline.steps(quick, profile)
    return 1


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
        print(f"  {key:28s} {fmt(summary[key]):>8s}   target {TARGETS[key].kind} {TARGETS[key].value}   "
              f"met: {summary['met'][key]}")
    return 0 if all(p["ok"] for p in part_info.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
