"""holocam segmenter: person masks on the CPU (or a GPU: --device cuda), served over ZeroMQ.

    python -m segmenter weights                              # fetch + verify the model weights (make weights)
    python -m segmenter kernels                              # compile the fused NHWC kernels (needs g++)
    python -m segmenter mask photo.jpg -o mask.png           # full-resolution mask of one image
    python -m segmenter mask photo.jpg -o mask.png --composite out.png --background beach.jpg
    python -m segmenter serve --connect tcp://127.0.0.1:5555 # a replica that joins a local sink
    python -m segmenter serve --bind tcp://*:5556            # a replica the sink connects to
    python -m segmenter serve --device auto --capacity 4     # CUDA when torch sees a GPU, else the CPU
"""

from __future__ import annotations

import argparse
import logging
import sys

from shared.cli import run_command

from .weights import WeightsError, fetch_weights

logger = logging.getLogger("segmenter")


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="download and verify the MediaPipe selfie-segmentation weights")
    p.add_argument("--cache-dir", help="weights cache (default: $HOLOCAM_CACHE_DIR or $XDG_CACHE_HOME/holocam)")
    p.add_argument("--wheel", help="extract from this mediapipe-0.10.14 wheel instead of downloading")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_mask(sub: argparse._SubParsersAction) -> None:
    from .model import DEFAULT_MODEL, MODEL_NAMES
    p = sub.add_parser("mask", help="write the full-resolution person mask of one image")
    p.add_argument("image", help="input image file")
    p.add_argument("-o", "--output", required=True, help="mask PNG to write (uint8, person probability x 255)")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    p.add_argument("--weights", help="weights file (required for icnet-resnet18)")
    p.add_argument("--cache-dir", help="weights cache")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--composite", metavar="OUT", help="also write the image composited over a background")
    p.add_argument("--background", default="#00b140",
                   help="background for --composite: an image file or a #rrggbb colour (default green)")


def _add_kernels(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kernels", help="compile the fused NHWC kernels the selfie models use (needs g++)")
    p.add_argument("--cache-dir", help="cache to build into (default: the weights cache)")
    p.add_argument("--force", action="store_true", help="rebuild even when the library is there")


def _run_kernels(args: argparse.Namespace) -> int:
    import torch

    from .kernels.build import build
    path = build(args.cache_dir, force=args.force)
    torch.ops.load_library(str(path))
    print(f"{path} ({torch.ops.holocam.isa()} on this CPU)")
    return 0


def _run_weights(args: argparse.Namespace) -> int:
    paths = fetch_weights(args.cache_dir, wheel=args.wheel, progress=not args.quiet)
    for path in paths:
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m segmenter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_weights(sub)
    _add_mask(sub)
    _add_kernels(sub)
    from . import config
    serve = sub.add_parser("serve", help="serve masks to one or more sinks over ZeroMQ")
    config.add_arguments(serve)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")

    from .kernels import KernelsUnavailable
    from .kernels.build import KernelBuildError
    from .mask_image import MaskImageError, run_mask
    from .model import ModelError
    errors = (WeightsError, ModelError, MaskImageError, KernelBuildError, KernelsUnavailable)
    return run_command(lambda: _command(args, run_mask), errors)


def _command(args: argparse.Namespace, run_mask) -> int:
    if args.command == "weights":
        return _run_weights(args)
    if args.command == "kernels":
        return _run_kernels(args)
    if args.command == "mask":
        return run_mask(args)
    from .serve import run as run_serve
    return run_serve(args)


if __name__ == "__main__":
    sys.exit(main())
