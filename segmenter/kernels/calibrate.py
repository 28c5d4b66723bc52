"""Fused kernels or stock torch ops: timed on the real model, on this CPU, once.

A kernel build can be slower than stock torch on some CPU (the avx2 build once ran at a third of
stock's speed on Zen 2), so with HOLOCAM_KERNELS unset the segmenter does not trust a build on its
name: when a model loads it runs both paths on a frame, interleaved (so both see the same machine
load), and keeps the faster. The result is cached per CPU model, instruction-set build (and the
one stock ops run with), torch version, kernel sources, model file and thread count, so a later
start reads it instead of timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

logger = logging.getLogger(__name__)

CACHE_FILE = "calibration.json"
ROUNDS = 12          # timed calls of each path, alternating
WARMUP = 2           # untimed calls of each first (allocator and JIT warm-up)
BUDGET_S = 0.4       # stop early once the timing has used this much wall time


@dataclass(frozen=True)
class Choice:
    fused_ms: float
    stock_ms: float
    use_fused: bool
    cached: bool = False

    def describe(self) -> str:
        chosen = "fused kernels" if self.use_fused else "stock torch ops"
        source = "cached calibration" if self.cached else "calibration"
        return f"fused {self.fused_ms:.2f} ms, stock {self.stock_ms:.2f} ms per mask -> {chosen} ({source})"


def decide(fused_ms: list[float], stock_ms: list[float]) -> Choice:
    """The faster path by median time; a tie or no timings keeps stock ops (never slower)."""
    if not fused_ms or not stock_ms:
        raise ValueError("calibration needs at least one timing of each path")
    fused, stock = statistics.median(fused_ms), statistics.median(stock_ms)
    return Choice(fused_ms=fused, stock_ms=stock, use_fused=fused < stock)


def time_interleaved(fused: Callable[[], object], stock: Callable[[], object], rounds: int = ROUNDS,
                     warmup: int = WARMUP, budget_s: float = BUDGET_S) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each, alternating fused/stock (stock first on odd rounds)."""
    for _ in range(warmup):
        fused()
        stock()
    times: dict[str, list[float]] = {"fused": [], "stock": []}
    started = time.perf_counter()
    for i in range(rounds):
        order = (("fused", fused), ("stock", stock)) if i % 2 == 0 else (("stock", stock), ("fused", fused))
        for name, call in order:
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - started > budget_s and i >= 3:
            break
    return times["fused"], times["stock"]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def stock_isa() -> str:
    """The instruction set stock torch ops run with: ATen's dispatch level and oneDNN's cap.

    Both can be capped by environment (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA), as the bench does to
    run an AVX-512 CPU like an AVX2 one; a timing made under another cap is another decision.
    """
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "all"
    return f"stock={torch.backends.cpu.get_cpu_capability().lower()}/onednn={onednn.lower()}"


def cache_key(model: str, model_file: str | os.PathLike, isa: str, threads: int) -> str:
    from .build import build_key   # the kernel sources, flags and torch build
    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:16]
    return "|".join([cpu_model(), isa, stock_isa(), torch.__version__, build_key(), model, digest,
                     f"threads={threads}"])


def _cache_path(cache: str | os.PathLike | None) -> Path:
    from shared.cache import cache_dir
    return cache_dir(cache) / "kernels" / CACHE_FILE


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:   # a corrupt file is timed again and rewritten
        logger.warning("ignoring the kernel calibration cache %s (%s); it will be rewritten", path, exc)
        return {}


def cached(key: str, cache: str | os.PathLike | None = None) -> Choice | None:
    entry = _read(_cache_path(cache)).get(key)
    try:
        return Choice(float(entry["fused_ms"]), float(entry["stock_ms"]), bool(entry["use_fused"]), cached=True)
    except (TypeError, KeyError, ValueError):
        return None


def store(key: str, choice: Choice, cache: str | os.PathLike | None = None) -> None:
    """Add the choice to the cache file, written atomically (a concurrent start never reads half)."""
    path = _cache_path(cache)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read(path)
        data[key] = {k: v for k, v in asdict(choice).items() if k != "cached"}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(f.name, path)
    except OSError as exc:   # e.g. a read-only cache baked into an image: it only times again next start
        logger.info("kernel calibration not cached (%s: %s): the next start times it again (~0.5 s)",
                    path, exc.strerror or exc)
