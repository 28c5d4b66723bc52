"""A segmenter replica: takes frames from one or more sinks over ZeroMQ and answers person masks.

ZeroMQ guide pattern: Paranoid Pirate worker (ppworker). Each sink link is a DEALER that says hello
(model, input size, capacity), heartbeats, and counts down its liveness; when the sink goes silent
it closes the socket and `connect()`s again after a backoff that doubles from RECONNECT_MIN_S to
RECONNECT_MAX_S. A sink that restarted answers our heartbeat with "unknown-replica" and we say
hello again at once. Inference runs on its own thread, so heartbeats keep flowing while the
model works: "silent" then really means dead, stopped or cut off.

    python -m segmenter serve --connect tcp://127.0.0.1:5555        # join a sink (the default)
    python -m segmenter serve --bind tcp://*:5556 --curve-dir keys/  # the sink connects to us
    python -m segmenter serve --connect tcp://sink:5555 --capacity 2 --threads 2
    python -m segmenter serve --device cuda --capacity 4   # a GPU: fp16 where it keeps parity, frames batched

SIGTERM or SIGINT: say goodbye (the sink sends no more), finish the frames in flight, exit 0.
`--test-delay-ms` (testing only) holds each reply back that long without blocking, like a replica
behind a slow link; the benchmarks and the reorder tests use it.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from shared import protocol
from shared.protocol import (ERR_BAD_REQUEST, ERR_BUSY, ERR_DRAINING, ERR_REFUSED, ERR_UNKNOWN_REPLICA,
                             MAX_TEXT, Error, Goodbye, Heartbeat, Hello, ProtocolError, SegmentRequest)
from shared.health import LivenessFile
from shared.errors import TransportError
from shared.heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS, peer_lifetime
from shared.keys import DEFAULT_REPLICA_KEY_NAME, CurveKeys, replica_keys
from shared.ratelog import RateLimitedLog
from shared.security import check_links, compose_network_from_env
from shared.transport import GOODBYE_LINGER_MS, ReplicaSocket

from .model import DEFAULT_MODEL, MODEL_NAMES, ModelError, SegmentationModel, create_model
from .device import load_device_model, resolve_device
from .model.base import InputSpec
from .weights import WeightsError

logger = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0
DRAIN_TIMEOUT_S = 5.0          # SIGTERM: longest wait for frames in flight
DEFAULT_CAPACITY = 1           # lowest latency; 2 hides transfer time on a slow link
MAX_CAPACITY = protocol.MAX_CAPACITY
MAX_RECV_PER_TURN = 64
DEFAULT_CONNECT = "tcp://127.0.0.1:5555"


@dataclass
class Link:
    """This replica's session with one sink over one endpoint."""
    endpoint: str
    mode: str                              # "connect" | "bind"
    sock: ReplicaSocket | None = None
    registered: bool = False               # the sink has answered since our last (re)connect
    generation: int = 0                    # bumps on reconnect: results for an older session are dropped
    last_heard: float = 0.0
    peer_lifetime_s: float = peer_lifetime(HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS)
    next_beat: float = 0.0
    reconnect_at: float | None = None
    backoff_s: float = RECONNECT_MIN_S
    refused_until: float = 0.0
    in_flight: set[int] = field(default_factory=set)


@dataclass
class _Job:
    link: Link
    generation: int
    request: SegmentRequest
    received: float


class Worker:
    """Serves one model to sinks: connect-mode links (we connect) and bind-mode links (sinks connect).

    Args:
        model: the segmentation model (its `input_spec` is announced in the hello).
        connect: sink endpoints to connect to.
        bind: endpoints to bind, for sinks that connect to us.
        capacity: frames in flight this replica accepts per sink.
        curve: this replica's keys (`shared.keys.replica_keys`) or None for plain text.
        insecure / compose_network: the plain-text rule (see shared.security).
        replica_id: the name the sink logs and counts us under.
        heartbeat_interval_s / heartbeat_liveness: our heartbeat period, and missed beats before
            the sink counts as gone.
        test_delay_ms: testing only: hold each reply back this long (without blocking).
        device: where the model computes, as the hello says it ("cpu", "cuda:0 fp16").
        batch: run frames that wait together in one pass (models with `segment_batch`, capacity > 1;
            the GPU path: there one pass of 4 costs little more than one of 1).
    """

    def __init__(self, model: SegmentationModel, *, connect: list[str] = (), bind: list[str] = (),
                 capacity: int = DEFAULT_CAPACITY, curve: CurveKeys | None = None, insecure: bool = False,
                 compose_network: bool = False, replica_id: str | None = None,
                 heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S, heartbeat_liveness: int = HEARTBEAT_LIVENESS,
                 test_delay_ms: float = 0.0, health_file: str | None = None, device: str = "cpu",
                 batch: bool = False) -> None:
        if not 1 <= capacity <= MAX_CAPACITY:
            raise TransportError(f"--capacity {capacity} is out of range: use 1..{MAX_CAPACITY} "
                                 f"(default {DEFAULT_CAPACITY})")
        if not connect and not bind:
            raise TransportError(f"no sink to serve: give --connect {DEFAULT_CONNECT} or --bind tcp://*:5556")
        check_links(connect=connect, bind=bind, curve=curve, insecure=insecure, compose_network=compose_network)
        self.model = model
        self.spec: InputSpec = model.input_spec
        self.capacity = capacity
        self.device = device
        self.batch = batch and capacity > 1 and hasattr(model, "segment_batch")
        self.curve = curve
        self.insecure = insecure
        self.compose_network = compose_network
        self.replica_id = (replica_id or f"{socket.gethostname()}-{os.getpid()}")[:64]
        self._health = LivenessFile(health_file)   # container HEALTHCHECK: the loop is alive
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_liveness = heartbeat_liveness
        self.test_delay_s = max(0.0, test_delay_ms) / 1000.0
        self.links = [Link(e, "connect") for e in connect] + [Link(e, "bind") for e in bind]
        self.counts = dict.fromkeys(("requests", "masks", "bad_messages", "busy", "failed", "reconnects",
                                     "batched_frames"), 0)
        self.mean_inference_ms = 0.0
        self._context = zmq.Context()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        self._delayed: list = []
        self._tiebreak = itertools.count()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._warn = RateLimitedLog(logger)
        self._draining = False
        self._outstanding = 0          # jobs queued, computing or held back, any session
        self._poller_key: tuple | None = None
        self._poller_cache: zmq.Poller | None = None

    # -- links (Paranoid Pirate) -------------------------------------------------------------------
    def connect(self, link: Link, now: float) -> None:
        """(Re)open a link's socket and say hello; safe to call again after a failure."""
        if link.sock is not None:
            link.sock.close()
        link.sock = ReplicaSocket(link.endpoint, mode=link.mode, curve=self.curve, insecure=self.insecure,
                                  compose_network=self.compose_network, context=self._context)
        link.registered = False
        link.generation += 1
        link.in_flight.clear()
        link.last_heard = now
        link.reconnect_at = None
        link.next_beat = now
        self._beat(link, now)

    def _hello(self) -> bytes:
        return protocol.encode(Hello(self.model_name, self.spec.width, self.spec.height, self.spec.resize,
                                     self.capacity, self.replica_id, round(self.heartbeat_interval_s * 1000),
                                     self.device))

    @property
    def model_name(self) -> str:
        return getattr(self.model, "KEY", type(self.model).__name__)

    def _beat(self, link: Link, now: float) -> None:
        """Heartbeat a registered link; keep saying hello to one that has not answered yet."""
        link.next_beat = now + self.heartbeat_interval_s
        if self._draining:
            return
        if link.registered:
            link.sock.send(protocol.encode(Heartbeat(round(self.heartbeat_interval_s * 1000))))
        elif now >= link.refused_until:
            link.sock.send(self._hello())

    def _check_liveness(self, link: Link, now: float) -> None:
        if link.sock is None:
            if link.reconnect_at is not None and now >= link.reconnect_at:
                self.connect(link, now)
            return
        if now - link.last_heard <= link.peer_lifetime_s:
            return
        if link.registered:
            logger.warning("W: sink at %s silent for %.1f s; %s", link.endpoint, now - link.last_heard,
                           "reconnecting" if link.mode == "connect" else "waiting for it to connect again")
        self.counts["reconnects"] += 1
        link.registered = False
        link.in_flight.clear()
        link.generation += 1
        if link.mode == "bind":
            # A listening socket stays open so a sink can reach us any time; only the session resets.
            link.last_heard = now
            return
        link.sock.close()
        link.sock = None
        link.reconnect_at = now + link.backoff_s
        link.backoff_s = min(link.backoff_s * 2, RECONNECT_MAX_S)

    # -- serving -------------------------------------------------------------------------------------
    def serve(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; then say goodbye, finish frames in flight and close."""
        inference = threading.Thread(target=self._infer_loop, name="holocam-inference", daemon=True)
        inference.start()
        drain_deadline = None
        try:
            now = time.monotonic()
            for link in self.links:
                self.connect(link, now)
            logger.info("I: serving %s %dx%d (%s) on %s, capacity %d%s, as %s on %s (%s)", self.model_name,
                        self.spec.width, self.spec.height, self.spec.resize, self.device, self.capacity,
                        ", batched" if self.batch else "", self.replica_id,
                        ", ".join(f"{l.mode} {l.endpoint}" for l in self.links),
                        "CurveZMQ" if self.curve else "plain text")
            while True:
                now = time.monotonic()
                self._health.beat()
                if stop.is_set() and not self._draining:
                    drain_deadline = now + DRAIN_TIMEOUT_S
                    self._start_draining()
                if self._draining and (self._idle() or now >= drain_deadline):
                    break
                self._poll_once(now)
        finally:
            self._jobs.put(None)
            inference.join(timeout=DRAIN_TIMEOUT_S)
            for link in self.links:
                if link.sock is not None:
                    # give the goodbye time to leave, but only towards a sink that is there
                    link.sock.close(linger_ms=GOODBYE_LINGER_MS if self._draining and link.registered else 0)
                    link.sock = None
            self._context.term()
            self._wake_r.close()
            self._wake_w.close()
            logger.info("I: stopped after %d masks (mean inference %.1f ms), %d bad messages, %d reconnects",
                        self.counts["masks"], self.mean_inference_ms, self.counts["bad_messages"],
                        self.counts["reconnects"])

    def _idle(self) -> bool:
        return self._outstanding == 0

    def _start_draining(self) -> None:
        self._draining = True
        goodbye = protocol.encode(Goodbye("shutting down"))
        for link in self.links:
            if link.sock is not None and link.registered:
                link.sock.send(goodbye)
        logger.info("I: shutting down: finishing %d frame(s) in flight",
                    sum(len(link.in_flight) for link in self.links))

    def _poller(self) -> zmq.Poller:
        key = tuple((link.generation, link.sock is None) for link in self.links)
        if key != self._poller_key:   # rebuilt only when a link's socket changed
            self._poller_key = key
            self._poller_cache = zmq.Poller()
            self._poller_cache.register(self._wake_r.fileno(), zmq.POLLIN)
            for link in self.links:
                if link.sock is not None:
                    self._poller_cache.register(link.sock.socket, zmq.POLLIN)
                    self._poller_cache.register(link.sock.monitor, zmq.POLLIN)
        return self._poller_cache

    def _poll_once(self, now: float) -> None:
        poller = self._poller()
        deadlines = [link.next_beat for link in self.links if link.sock is not None]
        deadlines += [link.reconnect_at for link in self.links if link.reconnect_at is not None]
        deadlines += [link.last_heard + link.peer_lifetime_s for link in self.links if link.sock is not None]
        if self._delayed:
            deadlines.append(self._delayed[0][0])
        timeout_ms = max(0.0, (min(deadlines, default=now + 0.1) - now) * 1000.0)
        events = dict(poller.poll(min(timeout_ms, 100.0)))
        if self._wake_r.fileno() in events:
            try:
                while self._wake_r.recv(4096):
                    pass
            except (BlockingIOError, OSError):
                pass
        now = time.monotonic()
        for link in self.links:
            if link.sock is None:
                continue
            if link.sock.monitor in events:
                for problem in link.sock.problems():
                    self._warn.error(f"problem:{problem}", "E: %s", problem)
            if link.sock.socket in events:
                for _ in range(MAX_RECV_PER_TURN):
                    parts = link.sock.recv()
                    if parts is None:
                        break
                    try:
                        self._handle(link, parts, now)
                    except Exception as exc:  # a message we failed on must not stop the replica
                        self._bad(link, f"internal error while handling it: {exc!r}")
                        logger.debug("handling a message failed", exc_info=True)
        self._collect_results(now)
        self._send_delayed(time.monotonic())
        now = time.monotonic()
        for link in self.links:
            self._check_liveness(link, now)
            if link.sock is not None and now >= link.next_beat:
                self._beat(link, now)

    def _bad(self, link: Link, why: str) -> None:
        self.counts["bad_messages"] += 1
        self._warn.warning(f"bad:{link.endpoint}", "W: dropped a bad message from %s: %s", link.endpoint, why)

    def _handle(self, link: Link, parts: list[bytes], now: float) -> None:
        try:
            message = protocol.decode_parts(parts)
        except ProtocolError as exc:
            self._bad(link, str(exc))
            return
        if isinstance(message, (SegmentRequest, Heartbeat)):
            link.last_heard = now
            if not link.registered:
                logger.info("I: registered with the sink at %s", link.endpoint)
            link.registered = True
            link.backoff_s = RECONNECT_MIN_S
            if isinstance(message, Heartbeat):
                link.peer_lifetime_s = peer_lifetime(self.heartbeat_interval_s, self.heartbeat_liveness,
                                                     message.interval_ms)
            else:
                self._on_request(link, message, now)
        elif isinstance(message, Error):
            link.last_heard = now
            self._on_error(link, message, now)
        elif isinstance(message, Goodbye):
            link.last_heard = now
            logger.info("I: the sink at %s said goodbye (%s)", link.endpoint, message.reason)
            link.registered = False
        else:
            self._bad(link, f"a sink must not send {type(message).__name__}")

    def _on_error(self, link: Link, error: Error, now: float) -> None:
        if error.code == ERR_UNKNOWN_REPLICA:
            # The sink restarted or dropped us: a new session; results of the old one are void.
            if link.registered:
                logger.info("I: the sink at %s does not know us (restarted?); saying hello again", link.endpoint)
            link.registered = False
            link.generation += 1
            link.in_flight.clear()
            if now >= link.refused_until and not self._draining:
                link.sock.send(self._hello())
        elif error.code == ERR_REFUSED:
            link.registered = False
            link.refused_until = now + RECONNECT_MAX_S
            self._warn.error(f"refused:{link.endpoint}", "E: the sink at %s refused this replica: %s",
                             link.endpoint, error.message)
        else:
            self._warn.warning(f"sink-error:{error.code}", "W: the sink at %s reported %s: %s",
                               link.endpoint, error.code, error.message)

    def _reply_error(self, link: Link, code: str, message: str, seq: int) -> None:
        link.sock.send(protocol.encode(Error(code, message[:MAX_TEXT], seq)))

    def _on_request(self, link: Link, request: SegmentRequest, now: float) -> None:
        self.counts["requests"] += 1
        if self._draining:
            self._reply_error(link, ERR_DRAINING, "shutting down", request.seq)
            return
        # `_outstanding` also counts jobs of sessions that were reset: the queue stays bounded
        # however often a sink (or an attacker) makes us start a new session.
        if (len(link.in_flight) >= self.capacity or request.seq in link.in_flight
                or self._outstanding >= self.capacity * len(self.links)):
            self.counts["busy"] += 1
            self._reply_error(link, ERR_BUSY, f"capacity is {self.capacity}", request.seq)
            return
        spec, w, h = self.spec, request.width, request.height
        if not spec.accepts(w, h):
            self.counts["bad_messages"] += 1
            self._warn.warning("size", "W: frame %d is %dx%d but this replica takes %dx%d (%s)",
                               request.seq, w, h, spec.width, spec.height, spec.resize)
            self._reply_error(link, ERR_BAD_REQUEST, f"frame is {w}x{h}; this replica takes "
                              f"{spec.width}x{spec.height} ({spec.resize})", request.seq)
            return
        link.in_flight.add(request.seq)
        self._outstanding += 1
        self._jobs.put(_Job(link, link.generation, request, now))

    # -- inference thread ----------------------------------------------------------------------------
    def _infer_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = [job]
            while self.batch and len(jobs) < self.capacity:   # frames already waiting join this pass
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)   # stop after this pass
                    break
                jobs.append(more)
            for done in self._infer(jobs):
                self._results.put(done)
            try:
                self._wake_w.send(b"\0")
            except (BlockingIOError, OSError):
                pass

    def _infer(self, jobs: list[_Job]) -> list[tuple[_Job, bytes, bool]]:
        """Masks (or error replies) for `jobs`: one model pass for all when batching, else one each."""
        out, ready = [], []
        for job in jobs:
            try:
                ready.append((job, protocol.request_pixels(job.request)))
            except ProtocolError as exc:
                out.append((job, protocol.encode(Error(ERR_BAD_REQUEST, str(exc)[:MAX_TEXT], job.request.seq)), False))
                self._warn.warning("decode", "W: frame %d: %s", job.request.seq, exc)
        groups = [ready] if self.batch and len(ready) > 1 else [[item] for item in ready]
        for group in groups:
            try:
                started = time.perf_counter()
                if len(group) > 1:
                    masks = self.model.segment_batch([rgb for _, rgb in group])
                    self.counts["batched_frames"] += len(group)   # read by tests and logs only
                else:
                    masks = [self.model.segment(group[0][1])]
                inference_ms = (time.perf_counter() - started) * 1000.0   # the pass, as each frame waited it
                for (job, rgb), mask in zip(group, masks):
                    if mask.dtype != np.uint8 or mask.shape != rgb.shape[:2]:
                        raise ModelError(f"model returned {mask.dtype} {mask.shape} for a {rgb.shape[:2]} frame")
                    encoding = "png" if job.request.encoding == "jpeg" else "raw"
                    out.append((job, protocol.encode_mask(mask, job.request.seq, inference_ms, self.replica_id,
                                                          encoding=encoding), True))
                self.mean_inference_ms += (inference_ms - self.mean_inference_ms) * 0.05
            except Exception as exc:  # one bad frame must not take the replica down; say what happened
                for job, _ in group:
                    out.append((job, protocol.encode(Error(ERR_BAD_REQUEST, f"inference failed: {exc}"[:MAX_TEXT],
                                                           job.request.seq)), False))
                self._warn.error("inference", "E: inference failed on frame(s) %s: %r",
                                 [job.request.seq for job, _ in group], exc)
        return out

    def _collect_results(self, now: float) -> None:
        while True:
            try:
                job, payload, ok = self._results.get_nowait()
            except queue.Empty:
                return
            self.counts["masks" if ok else "failed"] += 1
            send_at = job.received + self.test_delay_s
            if send_at > now:
                heapq.heappush(self._delayed, (send_at, next(self._tiebreak), job, payload))
            else:
                self._deliver(job, payload)

    def _send_delayed(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job, payload = heapq.heappop(self._delayed)
            self._deliver(job, payload)

    def _deliver(self, job: _Job, payload: bytes) -> None:
        self._outstanding -= 1
        link = job.link
        if job.generation != link.generation or link.sock is None:
            return    # that session is gone; the sink has given the frame up already
        link.in_flight.discard(job.request.seq)
        link.sock.send(payload)


# -- command line ------------------------------------------------------------------------------------

def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name, "").strip()
    return [v.strip() for v in value.split(",") if v.strip()] or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` subcommand's options (environment defaults in brackets)."""
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
    sec.add_argument("--curve-dir", default=os.environ.get("HOLOCAM_CURVE_DIR") or None,
                     help="keys folder from `python -m shared.keys DIR` (make keys); encrypts every link "
                          "[HOLOCAM_CURVE_DIR]")
    sec.add_argument("--curve-name", default=DEFAULT_REPLICA_KEY_NAME,
                     help="which key pair in --curve-dir is ours (default segmenter)")
    sec.add_argument("--curve-secret", default=None, metavar="FILE", help="our key pair file (overrides --curve-name)")
    sec.add_argument("--sink-key", default=None, metavar="FILE",
                     help="the sink's public key file (default DIR/sink.key)")
    sec.add_argument("--insecure", action="store_true",
                     help="allow plain text beyond loopback and the compose network (logs a warning)")
    sec.add_argument("--compose-network", action="store_true", default=compose_network_from_env(),
                     help="running on a compose network: plain text to service names is fine "
                          "[HOLOCAM_COMPOSE_NETWORK=1]")
    mod = parser.add_argument_group("model")
    mod.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    mod.add_argument("--weights", default=None, help="weights file (required for icnet-resnet18)")
    mod.add_argument("--cache-dir", default=None, help="weights cache (default $HOLOCAM_CACHE_DIR or ~/.cache/holocam)")
    mod.add_argument("--threads", type=int, default=1, help="torch threads (default 1: scale with replicas)")
    mod.add_argument("--device", default=os.environ.get("HOLOCAM_SEGMENTER_DEVICE") or "auto",
                     help="auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N "
                          "[HOLOCAM_SEGMENTER_DEVICE]")
    mod.add_argument("--precision", choices=("auto", "fp32", "fp16"), default="auto",
                     help="on a GPU: auto = fp16 where its masks keep parity with fp32 (checked at start)")
    parser.add_argument("--health-file", default=None,
                        help="file the serving loop touches every second (container healthcheck)")
    parser.add_argument("--test-delay-ms", type=float, default=0.0,
                        help="testing only: hold every reply back this long (simulates a slow link)")


def create_model_threads(threads: int) -> None:
    if threads < 1:
        raise ModelError(f"--threads must be at least 1, got {threads}")
    import torch
    torch.set_num_threads(threads)


def _curve_from_args(args: argparse.Namespace) -> CurveKeys | None:
    if not (args.curve_dir or args.curve_secret):
        return None
    if args.curve_secret and not args.sink_key and not args.curve_dir:
        raise TransportError("--curve-secret needs the sink's public key too: add --sink-key FILE or --curve-dir DIR")
    return replica_keys(args.curve_dir or ".", name=args.curve_name, secret_file=args.curve_secret,
                        sink_key_file=args.sink_key)


def run(args: argparse.Namespace) -> int:
    """Build the model and serve until SIGTERM/SIGINT; user errors -> one line on stderr, exit 2."""
    try:
        connect = args.connect or _env_list("HOLOCAM_CONNECT") or []
        bind = args.bind or _env_list("HOLOCAM_BIND") or []
        if not connect and not bind:
            connect = [DEFAULT_CONNECT]
        if not 1 <= args.capacity <= MAX_CAPACITY:
            raise TransportError(f"--capacity {args.capacity} is out of range: use 1..{MAX_CAPACITY} "
                                 f"(default {DEFAULT_CAPACITY})")
        curve = _curve_from_args(args)
        # Endpoints, keys and numbers fail before the (slow) model load.
        check_links(connect=connect, bind=bind, curve=curve, insecure=args.insecure,
                    compose_network=args.compose_network)
        device = resolve_device(args.device)   # one line naming the fix, before the slow model load
        if device.type == "cpu":   # the CPU's own fastest path (traced graph, fused kernels)
            model = create_model(args.model, weights=args.weights, cache_dir=args.cache_dir, threads=args.threads)
            device_name = "cpu"
        else:
            create_model_threads(args.threads)
            model = load_device_model(args.model, device, weights=args.weights, cache_dir=args.cache_dir,
                                      precision=args.precision)
            device_name = model.device_name
        spec = model.input_spec
        model.segment(np.zeros((spec.height, spec.width, 3), np.uint8))   # warm-up: first call is slow
        worker = Worker(model, connect=connect, bind=bind, capacity=args.capacity, curve=curve,
                        insecure=args.insecure, compose_network=args.compose_network,
                        replica_id=args.replica_id, test_delay_ms=args.test_delay_ms,
                        health_file=args.health_file, device=device_name, batch=device.type != "cpu")
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
