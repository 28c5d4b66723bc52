"""How a per-build benchmark part writes its results: JSON, a markdown table and a PNG in
bench/results/ (bench_kernels and bench_native share this shape)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, results: dict, markdown: Callable[[dict], str], plot: Callable[[dict, Path], None]) -> None:
    """bench/results/<name>.json, .md and .png."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown(results))
    plot(results, RESULTS / f"{name}.png")


def build_table(results: dict, title: str, header: list[str], row: Callable[[dict], list[str]],
                note: str = "", text_columns: tuple[int, ...] = (0, 1)) -> str:
    """A markdown page: the title with the CPU and its flags, the command, one table row per build
    (a build this CPU cannot run shows its reason); `text_columns` are left-aligned, the rest numbers."""
    m = results["machine"]
    lines = [f"# {title} on {m['cpu']} (avx512f: {m['avx512f']}, avx2: {m['avx2']})", "",
             f"`{results['command']}`; {results['what']}.{note}", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i in text_columns else "---:" for i in range(len(header))) + "|"]
    for item in results["rows"]:
        if "skipped" in item:
            cells = [item["build"]] + ["—"] * (len(header) - 1)
            cells[len(header) // 2] = item["skipped"]
        else:
            cells = row(item)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_bars(results: dict, path: Path, series: list[tuple[str, str]], label: Callable[[dict], str],
               ylabel: str, title: str) -> None:
    """Grouped bars, one group per build row that ran, one bar per (result key, legend name)."""
    from bench import plots

    plt = plots.pyplot()
    rows = [r for r in results["rows"] if "skipped" not in r]
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(rows)), 4))
    width = 0.8 / len(series)
    for i, (key, name) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar([j + offset for j in range(len(rows))], [r[key] for r in rows], width, label=name)
    ax.set_xticks(list(range(len(rows))), [label(r) for r in rows], fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} on {results['machine']['cpu']}")
    ax.legend()
    plots.save(fig, path, dpi=110)
