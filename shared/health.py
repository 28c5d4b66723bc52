"""Liveness files for container healthchecks.

A service's main loop calls `LivenessFile.beat()` (cheap: it touches the file at most once a second);
the image's HEALTHCHECK runs `python -m shared.health FILE --max-age 10`, which exits 1 when the
loop has not beaten for that long (a stuck loop, not only a dead process, turns unhealthy).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

MIN_INTERVAL_S = 1.0


class LivenessFile:
    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None
        self._last = 0.0

    def beat(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last >= MIN_INTERVAL_S:
            self._last = now
            self.path.touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.health", description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--max-age", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        age = time.time() - os.stat(args.file).st_mtime
    except OSError:
        print(f"unhealthy: {args.file} missing (the service has not started its loop)")
        return 1
    if age > args.max_age:
        print(f"unhealthy: no heartbeat for {age:.0f} s")
        return 1
    print(f"healthy: last heartbeat {age:.1f} s ago")
    return 0


if __name__ == "__main__":
    sys.exit(main())
