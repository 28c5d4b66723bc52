"""The sink's native frame passes per build on this CPU, against the OpenCV path each replaces.

    python bench/bench_native.py            # bench/results/native.{json,png,md}
    python bench/bench_native.py --quick    # fewer runs (a smoke check)

The library holds three builds (avx512, avx2, generic); the sink loads the widest this CPU runs
and, at each frame size, keeps a pass only where it beats OpenCV there (capture_sink/native/
choice.py). This times every build the CPU runs, 1 OpenCV thread as the sink uses, at 720p and
1080p, on a real photo with a person-shaped soft mask: the hologram fused with the composite
(against the hologram effect + the compositor), the composite alone (against the compositor) and
the refiner's alpha upsample from its work size, 2x / 3x (against cv2.resize INTER_LINEAR), and
the guided filter's last step at the work size (against two float resizes, a multiply and an add),
and BGR -> YUYV for the virtual camera (against cv2.cvtColor).
Medians of runs in turns (OpenCV, native, OpenCV, ...), so the ratios hold on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import report  # noqa: E402
from bench.machine import describe  # noqa: E402

ISAS = ("avx512", "avx2", "generic")


def run(quick: bool = False) -> dict:
    from capture_sink.native import library
    from capture_sink.native.timing import time_builds

    runnable = library.runnable_isas()
    rows = time_builds(runnable, rounds=10 if quick else 60)
    rows += [{"build": isa, "skipped": "this CPU cannot run it"} for isa in ISAS if isa not in runnable]
    results = {"command": "python bench/bench_native.py" + (" --quick" if quick else ""),
               "what": "ms per frame of each pass, 1 thread, medians of runs in turns with the OpenCV path",
               "machine": {**describe(), "sink_native_build": library.best_isa()}, "rows": rows}
    report.write("native", results, markdown, _plot)
    return results


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
    args = parser.parse_args()
    print(markdown(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
