"""Never slower than OpenCV: time each native pass against the OpenCV path it replaces, on this CPU.

The first time a pass meets a frame size, both paths run a few times, interleaved (so a noisy
neighbour slows both alike), on that frame's own buffers; the faster median wins and one log line
gives both times and the choice. The decision is kept per pass, frame size and build for the life
of the process (it costs about 50 ms at 1280x720, so it is not cached on disk).
With HOLOCAM_SINK_NATIVE=1 the native pass is used without timing (tests, benchmarks).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from . import library

logger = logging.getLogger(__name__)

ROUNDS = 5                      # interleaved runs of each path
_decisions: dict[tuple, bool] = {}
_lock = threading.RLock()   # re-entered: the hologram's OpenCV path calls the compositor's choice


def decide(stock_ms: float, native_ms: float) -> bool:
    """True when the native pass is strictly faster than the stock one."""
    return native_ms < stock_ms


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def time_both(stock: Callable[[], object], native: Callable[[], object], rounds: int = ROUNDS) -> tuple[float, float]:
    """Median ms of `stock` and `native`, run alternately `rounds` times each after one warm-up."""
    stock(), native()
    stock_ms, native_ms = [], []
    for _ in range(rounds):
        for fn, out in ((stock, stock_ms), (native, native_ms)):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1000.0)
    return _median(stock_ms), _median(native_ms)


def use_native(op: str, size: tuple[int, int], isa: str, stock: Callable[[], object],
               native: Callable[[], object]) -> bool:
    """Whether pass `op` should run natively at frame `size` (h, w); times both the first time.

    Args:
        op: the pass, for the log ("hologram+composite", "composite").
        size: (height, width) of the frames.
        isa: the native build in use.
        stock, native: run the pass once each way on the current frame's buffers.
    """
    key = (op, size, isa)
    with _lock:
        if key in _decisions:
            return _decisions[key]
        if library.mode() == "on":
            _decisions[key] = True
            return True
        stock_ms, native_ms = time_both(stock, native)
        choice = decide(stock_ms, native_ms)
        _decisions[key] = choice
    logger.info("sink %s at %dx%d: native (%s build) %.2f ms, OpenCV %.2f ms -> %s", op, size[1], size[0],
                isa, native_ms, stock_ms, "native" if choice else "OpenCV")
    return choice


def chosen(op: str, size: tuple[int, int], isa: str) -> bool:
    """True when pass `op` was timed (or forced) at `size` and runs natively."""
    with _lock:
        return _decisions.get((op, size, isa), False)


def decisions() -> dict[str, bool]:
    """What was chosen so far, e.g. {"hologram+composite 1280x720 avx2": True} (for the page and bench)."""
    with _lock:
        return {f"{op} {size[1]}x{size[0]} {isa}": chosen for (op, size, isa), chosen in _decisions.items()}


def forget() -> None:
    """Drop every decision (tests)."""
    with _lock:
        _decisions.clear()
