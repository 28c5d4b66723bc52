"""py-spy profiles of running processes, and the hot-spot summary in bench/results/profiles.md.

    profiles = profile_during({"sink": pid1, "segmenter": pid2}, seconds=8, out_dir=RESULTS,
                              action=lambda: child.ask("uncapped 9"))
    write_markdown(profiles, RESULTS / "profiles.md", pipeline_result)

Each process is recorded with `py-spy record --native --format speedscope` (open the files at
https://www.speedscope.app/). py-spy samples only threads that are running (not idle in a wait), so
a sample is CPU time. Native frames from stripped libraries (OpenCV's wheel) have no names: they
are grouped by library and charged to the nearest Python line that called them, which is the
line to look at.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
ATTACH_S = 0.7            # py-spy needs a moment to attach before the measured work starts
TOP = 15
PROJECT_DIRS = ("capture_sink", "segmenter", "shared")   # inclusive table: the product, not the harness


class ProfileError(RuntimeError):
    """Profiling cannot run here; the message names the fix."""


def py_spy() -> str:
    """The py-spy executable: next to this Python first (a venv run without activation), else PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise ProfileError("py-spy is not installed: pip install py-spy==0.4.1 (or run with --no-profile)")
    return found


def profile_during(targets: dict[str, int], seconds: float, out_dir: Path, action: Callable[[], object]) -> dict:
    """Record every pid in `targets` for `seconds` while `action()` runs; summaries by target name."""
    exe = py_spy()
    recorders = {}
    for name, pid in targets.items():
        path = out_dir / f"profile_{name}.speedscope.json"
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(round(seconds))), "--native",
               "--format", "speedscope", "--output", str(path)]
        recorders[name] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), path)
    time.sleep(ATTACH_S)
    action_result = action()
    summaries = {}
    for name, (proc, path) in recorders.items():
        output, _ = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0 or not path.exists():
            raise ProfileError(f"py-spy failed on {name} (pid {targets[name]}): {output.strip()[-300:]}; "
                               f"it needs ptrace rights (root, or kernel.yama.ptrace_scope=0)")
        summaries[name] = {**summarise(path), "file": str(path.relative_to(out_dir.parent.parent)),
                           "during": _brief(action_result)}
    return summaries


def _brief(result: object) -> dict:
    if isinstance(result, dict):
        return {k: result[k] for k in ("fps", "frames", "seconds") if k in result}
    return {}


def _short(path: str) -> str:
    """Path relative to the repo for project files, else the module-ish tail (site-packages/...)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(REPO))
    except (ValueError, OSError):
        pass
    parts = p.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1:])
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _is_python(frame: dict) -> bool:
    return frame["file"].endswith(".py")


def summarise(path: Path) -> dict:
    """Hot spots of one speedscope file: per thread share, self time by Python line (with the native
    library under it), inclusive time of project functions."""
    data = json.loads(Path(path).read_text())
    frames = data["shared"]["frames"]
    total = 0
    threads: Counter[str] = Counter()
    self_lines: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    native_libs: Counter[str] = Counter()
    for profile in data["profiles"]:
        thread = profile["name"].split('"')[1] if '"' in profile["name"] else profile["name"]
        for stack, weight in zip(profile["samples"], profile["weights"]):
            total += 1
            threads[thread] += 1
            py_leaf, native = None, None
            for index in reversed(stack):              # leaf first
                frame = frames[index]
                if _is_python(frame):
                    py_leaf = frame
                    break
                if native is None:
                    native = frame
            where = (f"{py_leaf['name']} ({_short(py_leaf['file'])}:{py_leaf['line']})" if py_leaf else "(no Python frame)")
            lib = _native_label(native) if native else None
            if lib:
                native_libs[lib] += 1
            self_lines[f"[{thread}] {where}" + (f" -> {lib}" if lib else "")] += 1
            seen = set()
            for index in stack:
                frame = frames[index]
                if _is_python(frame) and _short(frame["file"]).startswith(PROJECT_DIRS):
                    key = f"{frame['name']} ({_short(frame['file'])})"
                    if key not in seen:
                        seen.add(key)
                        inclusive[key] += 1

    def share(counter: Counter[str], n: int) -> list[list]:
        return [[key, count, round(100.0 * count / max(total, 1), 1)] for key, count in counter.most_common(n)]

    return {"samples": total, "threads": share(threads, 10), "self": share(self_lines, TOP),
            "inclusive": share(inclusive, TOP), "native": share(native_libs, 8)}


def _native_label(frame: dict) -> str:
    """`lib.so` for a nameless frame, else `lib.so:symbol` (symbols shortened)."""
    lib = os.path.basename(frame["file"]) or "?"
    name = frame["name"]
    if name.startswith("0x"):
        return lib
    name = name.split("(")[0]
    return f"{lib}:{name[:80]}"


def write_markdown(profiles: dict, path: Path, pipeline: dict | None = None,
                   during: str = "an uncapped 1280x720 run (bench/bench_pipeline.py)") -> None:
    """bench/results/profiles.md: the tables of every profiled process."""
    lines = ["# Profiles (py-spy, written by `make bench`)", "",
             f"Sampled with `py-spy record --native --format speedscope` during {during}; open the `.speedscope.json` files at https://www.speedscope.app/. "
             "Percentages are of the process's samples (running threads only). A Python line with "
             "`-> lib.so` is time spent in that library under that line; OpenCV's wheel is stripped, so its "
             "native time is charged to the calling line.", ""]
    for name, prof in profiles.items():
        if "error" in prof:
            lines += [f"## {name}", "", f"not profiled: {prof['error']}", ""]
            continue
        during = prof.get("during", {})
        lines += [f"## {name}", "",
                  f"{prof['samples']} samples; file `{prof['file']}`"
                  + (f"; {during.get('fps')} fps while profiled (py-spy pauses the process to sample)"
                     if during.get("fps") else ""), "",
                  "Threads: " + ", ".join(f"{t} {p}%" for t, _, p in prof["threads"]), "",
                  "| self time: where (thread, Python line -> native library) | samples | % |", "|---|---:|---:|"]
        lines += [f"| `{key}` | {n} | {p} |" for key, n, p in prof["self"]]
        lines += ["", "| inclusive time, project functions | samples | % |", "|---|---:|---:|"]
        lines += [f"| `{key}` | {n} | {p} |" for key, n, p in prof["inclusive"]]
        lines += [""]
    if pipeline:
        stages = pipeline.get("stage_ms_median", {})
        lines += ["## Stage medians of the same run (ms per frame)", ""]
        for name, row in stages.items():
            lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")
