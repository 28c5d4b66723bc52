"""Build the sink's native frame passes and show which build this CPU uses.

    python -m capture_sink.native            # build into the cache (make kernels does this)
    python -m capture_sink.native --force    # rebuild
    python -m capture_sink.native --time     # time every build this CPU runs against OpenCV
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from . import build as native_build
from . import library


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capture_sink.native", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache has the library")
    parser.add_argument("--cache-dir", help="the holocam cache (default $HOLOCAM_CACHE_DIR or ~/.cache/holocam)")
    parser.add_argument("--time", action="store_true",
                        help="time each build this CPU runs against OpenCV at 720p and 1080p (JSON on stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname).1s %(name)s: %(message)s")
    try:
        path = native_build.build(args.cache_dir, force=args.force)
    except native_build.NativeBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runnable = library.runnable_isas()
    print(f"{path} (builds {', '.join(library.builds())}; this CPU runs "
          f"{', '.join(runnable)}, uses {library.best_isa()})", file=sys.stderr)
    if args.time:
        from .timing import time_builds
        print(json.dumps(time_builds(runnable), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
