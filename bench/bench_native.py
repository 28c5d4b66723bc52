"""The sink's native frame passes per build on this CPU, against the OpenCV path each replaces.

    python bench/bench_native.py            # bench/results/native.{json,png,md}
    python bench/bench_native.py --quick    # fewer runs (a smoke check)

The library holds four builds (avx512, avx2, sse4, generic); the sink loads the widest this CPU runs
and, at each frame size, keeps a pass only where it beats OpenCV there (capture_sink/native/
choice.py). This times every build the CPU runs, 1 OpenCV thread as the sink uses, at 720p and
1080p, on a real photo with a person-shaped soft mask: the hologram fused with the composite
(against the hologram effect + the compositor), the composite alone (against the compositor) and
the refiner's alpha upsample from its work size, 2x / 3x (against cv2.resize INTER_LINEAR), and
the guided filter's last step at the work size (against two float resizes, a multiply and an add),
and BGR -> YUYV for the virtual camera (against cv2.cvtColor).
Medians of runs in turns (OpenCV, native, OpenCV, ...), so the ratios hold on a shared machine.
On a CPU with AVX2 the sse4 build is timed once more in a child process whose OpenCV and NumPy are
kept to SSE4 (bench.machine.OPENCV_AT_SSE4): the comparison a CPU without AVX makes.
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
from bench.machine import OPENCV_AT_SSE4, describe  # noqa: E402

ISAS = ("avx512", "avx2", "sse4", "generic")
AT_SSE4 = "sse4, OpenCV at SSE4"


def run(quick: bool = False) -> dict:
    from capture_sink.native import library
    from capture_sink.native.timing import time_builds

    runnable = library.runnable_isas()
    rounds = 10 if quick else 60
    rows = time_builds(runnable, rounds=rounds)
    rows += [{"build": isa, "skipped": "this CPU cannot run it"} for isa in ISAS if isa not in runnable]
    if "sse4" in runnable and "avx2" in runnable:
        rows += _sse4_against_capped_opencv(rounds)
    results = {"command": "python bench/bench_native.py" + (" --quick" if quick else ""),
               "what": "ms per frame of each pass, 1 thread, medians of runs in turns with the OpenCV path",
               "machine": {**describe(), "sink_native_build": library.best_isa()}, "rows": rows}
    report.write("native", results, markdown, _plot)
    return results


def _sse4_against_capped_opencv(rounds: int) -> list[dict]:
    """The sse4 build's rows timed in a child whose OpenCV and NumPy stay at SSE4."""
    env = {**os.environ, **OPENCV_AT_SSE4}
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-sse4", str(rounds)], env=env,
                              capture_output=True, text=True, timeout=600, check=True)
        rows = json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        tail = getattr(exc, "stderr", "") or ""
        return [{"build": AT_SSE4, "skipped": f"the capped child failed: {exc} {tail[-200:]}".strip()}]
    return [{**row, "build": AT_SSE4} for row in rows]


def markdown(results: dict) -> str:
    return report.build_table(
        results, "Sink native passes per build",
        ["build", "size", "pass", "OpenCV ms", "native ms", "native vs OpenCV", "max pixel diff", "sink keeps"],
        lambda r: [r["build"], r["size"], r["pass"], f"{r['opencv_ms']:.2f}", f"{r['native_ms']:.2f}",
                   f"{r['speedup']:.2f}x", str(r["max_diff"]), "native" if r["chosen"] else "OpenCV"],
        note=f" The sink uses the {results['machine']['sink_native_build']} build here.", text_columns=(0, 1, 2, 7))


def _plot(results: dict, path: Path) -> None:
    report.build_bars(results, path, [("opencv_ms", "OpenCV path"), ("native_ms", "native pass")],
                      lambda r: "\n".join((r["build"], r["size"], r["pass"].replace("+", "+\n"))),
                      "ms per frame (1 thread)", "Sink native passes per build")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs (a smoke check)")
    parser.add_argument("--child-sse4", type=int, metavar="ROUNDS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_sse4:
        from capture_sink.native.timing import time_builds
        print(json.dumps(time_builds(["sse4"], rounds=args.child_sse4)))
        return 0
    print(markdown(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
