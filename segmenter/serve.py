"""`python -m segmenter serve`: settings -> model on its device -> Worker, until SIGTERM/SIGINT.

    python -m segmenter serve --connect tcp://127.0.0.1:5555        # join a sink (the default)
    python -m segmenter serve --bind tcp://*:5556 --curve-dir keys/  # the sink connects to us
    python -m segmenter serve --connect tcp://sink:5555 --capacity 2 --threads 2
    python -m segmenter serve --device cuda --capacity 4   # a GPU: fp16 where it keeps parity, frames batched

SIGTERM or SIGINT: say goodbye (the sink sends no more), finish the frames in flight, exit 0.
The options themselves are in `config.py`, the serving loop in `worker.py`; this file only wires
them together and turns user errors into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import numpy as np

from shared.errors import TransportError

from .config import ServeSettings
from .device import load_device_model, resolve_device
from .model import ModelError, SegmentationModel, create_model, set_threads
from .weights import WeightsError
from .worker import Worker


def load_model(settings: ServeSettings) -> tuple[SegmentationModel, str]:
    """The model on its device, warmed up, and the device as the hello names it ("cpu", "cuda:0 fp16")."""
    device = resolve_device(settings.device)   # one line naming the fix, before the slow model load
    if device.type == "cpu":   # the CPU's own fastest path (traced graph, fused kernels)
        model = create_model(settings.model, weights=settings.weights, cache_dir=settings.cache_dir,
                             threads=settings.threads)
        device_name = "cpu"
    else:
        set_threads(settings.threads)
        model = load_device_model(settings.model, device, weights=settings.weights, cache_dir=settings.cache_dir,
                                  precision=settings.precision)
        device_name = model.device_name
    spec = model.input_spec
    model.segment(np.zeros((spec.height, spec.width, 3), np.uint8))   # warm-up: first call is slow
    return model, device_name


def run(args: argparse.Namespace) -> int:
    """Build the model and serve until SIGTERM/SIGINT; user errors -> one line on stderr, exit 2."""
    try:
        settings = ServeSettings.from_args(args)   # endpoints, keys and numbers fail before the model load
        model, device_name = load_model(settings)
        # The sinks were checked against the plain-text rule above: the worker takes them as they are.
        worker = Worker(model, sinks=settings.sinks, capacity=settings.capacity, replica_id=settings.replica_id,
                        test_delay_ms=settings.test_delay_ms, health_file=settings.health_file,
                        device=device_name, batch=device_name != "cpu")   # batching pays on a GPU only
    except (TransportError, WeightsError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        except ValueError:   # not the main thread (embedded use): the caller stops us
            pass
    try:
        worker.serve(stop)
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
