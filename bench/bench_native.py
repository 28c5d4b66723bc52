"""The sink's native frame passes per build on this CPU, against the OpenCV path each replaces.

    python bench/bench_native.py            # bench/results/native.{json,png,md}
    python bench/bench_native.py --quick    # fewer runs (a smoke check)

The library holds three builds (avx512, avx2, generic); the sink loads the widest this CPU runs
and, at each frame size, keeps a pass only where it beats OpenCV there (capture_sink/native/
choice.py). This times every build the CPU runs, 1 OpenCV thread as the sink uses, at 720p and
1080p, on a real photo with a person-shaped soft mask: the hologram fused with the composite
(against the hologram effect + the compositor) and the composite alone (against the compositor).
Medians of runs in turns (OpenCV, native, OpenCV, ...), so the ratios hold on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402

RESULTS = REPO / "bench" / "results"
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "native.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "native.md").write_text(markdown(results))
    _plot(results, RESULTS / "native.png")
    return results


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [f"# Sink native passes per build on {m['cpu']} (avx512f: {m['avx512f']}, avx2: {m['avx2']})", "",
             f"`{results['command']}`; {results['what']}. The sink uses the {m['sink_native_build']} build here.", "",
             "| build | size | pass | OpenCV ms | native ms | native vs OpenCV | max pixel diff | sink keeps |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for row in results["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['build']} | — | — | — | — | {row['skipped']} | — | — |")
            continue
        lines.append(f"| {row['build']} | {row['size']} | {row['pass']} | {row['opencv_ms']:.2f} | "
                     f"{row['native_ms']:.2f} | {row['speedup']:.2f}x | {row['max_diff']} | "
                     f"{'native' if row['chosen'] else 'OpenCV'} |")
    return "\n".join(lines) + "\n"


def _plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if "skipped" not in r]
    labels = ["\n".join((r["build"], r["size"], r["pass"].replace("+", "+\n"))) for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4))
    ax.bar([j - 0.2 for j in x], [r["opencv_ms"] for r in rows], 0.4, label="OpenCV path")
    ax.bar([j + 0.2 for j in x], [r["native_ms"] for r in rows], 0.4, label="native pass")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("ms per frame (1 thread)")
    ax.set_title(f"Sink native passes per build on {results['machine']['cpu']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs (a smoke check)")
    args = parser.parse_args()
    print(markdown(run(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
