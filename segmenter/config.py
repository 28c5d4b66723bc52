"""The `serve` command line and environment, read in one place: `ServeSettings.from_args`.

Each option may come from a flag or from the environment (named in brackets in `--help`); the
flag wins. Everything a user can get wrong without a model (endpoints, keys, capacity, the
plain-text rule) is checked here, so such a mistake fails in one line before the slow model load.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Mapping

from shared.errors import TransportError
from shared.keys import DEFAULT_REPLICA_KEY_NAME, CurveKeys, replica_keys
from shared.security import compose_network_from_env

from .links import DEFAULT_CAPACITY, DEFAULT_CONNECT, Sinks, check_capacity, check_sinks
from .model import DEFAULT_MODEL, MODEL_NAMES


@dataclass(frozen=True)
class ServeSettings:
    """Everything `python -m segmenter serve` runs with, from flags and environment."""
    sinks: Sinks
    capacity: int
    replica_id: str | None
    model: str
    weights: str | None
    cache_dir: str | None
    threads: int
    device: str
    precision: str
    health_file: str | None
    test_delay_ms: float

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> "ServeSettings":
        """Settings from parsed `serve` flags, the environment filling what the flags leave out.

        Raises TransportError for a bad endpoint, key, capacity or plain text off the machine.
        """
        connect = args.connect or _env_list(environ, "HOLOCAM_CONNECT") or []
        bind = args.bind or _env_list(environ, "HOLOCAM_BIND") or []
        if not connect and not bind:
            connect = [DEFAULT_CONNECT]
        check_capacity(args.capacity)
        curve = _curve_keys(args.curve_dir or environ.get("HOLOCAM_CURVE_DIR") or None, args)
        sinks = check_sinks(connect, bind, curve=curve, insecure=args.insecure,
                            compose_network=args.compose_network or compose_network_from_env(environ))
        return cls(sinks=sinks, capacity=args.capacity, replica_id=args.replica_id, model=args.model,
                   weights=args.weights, cache_dir=args.cache_dir, threads=args.threads,
                   device=args.device or environ.get("HOLOCAM_SEGMENTER_DEVICE") or "auto",
                   precision=args.precision, health_file=args.health_file, test_delay_ms=args.test_delay_ms)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` subcommand's options (environment variables in brackets, read by `from_args`)."""
    net = parser.add_argument_group("sinks")
    net.add_argument("--connect", action="append", metavar="ENDPOINT",
                     help=f"a sink to join, repeatable [HOLOCAM_CONNECT, comma-separated] "
                          f"(default {DEFAULT_CONNECT} unless --bind is given)")
    net.add_argument("--bind", action="append", metavar="ENDPOINT",
                     help="listen here for a sink that connects (its --segmenter tcp://HOST:PORT), "
                          "repeatable [HOLOCAM_BIND]")
    net.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY,
                     help=f"frames in flight per sink (default {DEFAULT_CAPACITY}: lowest latency; "
                          f"2 hides transfer time on a slow link)")
    net.add_argument("--replica-id", default=None, help="name in the sink's logs (default HOSTNAME-PID)")
    sec = parser.add_argument_group("security")
    sec.add_argument("--curve-dir", default=None,
                     help="keys folder from `python -m shared.keys DIR` (make keys); encrypts every link "
                          "[HOLOCAM_CURVE_DIR]")
    sec.add_argument("--curve-name", default=DEFAULT_REPLICA_KEY_NAME,
                     help="which key pair in --curve-dir is ours (default segmenter)")
    sec.add_argument("--curve-secret", default=None, metavar="FILE", help="our key pair file (overrides --curve-name)")
    sec.add_argument("--sink-key", default=None, metavar="FILE",
                     help="the sink's public key file (default DIR/sink.key)")
    sec.add_argument("--insecure", action="store_true",
                     help="allow plain text beyond loopback and the compose network (logs a warning)")
    sec.add_argument("--compose-network", action="store_true",
                     help="running on a compose network: plain text to service names is fine "
                          "[HOLOCAM_COMPOSE_NETWORK=1]")
    mod = parser.add_argument_group("model")
    mod.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    mod.add_argument("--weights", default=None, help="weights file (required for icnet-resnet18)")
    mod.add_argument("--cache-dir", default=None, help="weights cache (default $HOLOCAM_CACHE_DIR or ~/.cache/holocam)")
    mod.add_argument("--threads", type=int, default=1, help="torch threads (default 1: scale with replicas)")
    mod.add_argument("--device", default=None,
                     help="auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N "
                          "[HOLOCAM_SEGMENTER_DEVICE]")
    mod.add_argument("--precision", choices=("auto", "fp32", "fp16"), default="auto",
                     help="on a GPU: auto = fp16 where its masks keep parity with fp32 (checked at start)")
    parser.add_argument("--health-file", default=None,
                        help="file the serving loop touches every second (container healthcheck)")
    parser.add_argument("--test-delay-ms", type=float, default=0.0,
                        help="testing only: hold every reply back this long (simulates a slow link)")


def _env_list(environ: Mapping[str, str], name: str) -> list[str] | None:
    value = environ.get(name, "").strip()
    return [v.strip() for v in value.split(",") if v.strip()] or None


def _curve_keys(curve_dir: str | None, args: argparse.Namespace) -> CurveKeys | None:
    if not (curve_dir or args.curve_secret):
        return None
    if args.curve_secret and not args.sink_key and not curve_dir:
        raise TransportError("--curve-secret needs the sink's public key too: add --sink-key FILE or --curve-dir DIR")
    return replica_keys(curve_dir or ".", name=args.curve_name, secret_file=args.curve_secret,
                        sink_key_file=args.sink_key)
