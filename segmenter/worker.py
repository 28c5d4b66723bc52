"""A segmenter replica: takes frames from one or more sinks over ZeroMQ and answers person masks.

ZeroMQ guide pattern: Paranoid Pirate worker (ppworker). Each sink link is a DEALER that says hello
(model, input size, capacity), heartbeats, and counts down its liveness; when the sink goes silent
it closes the socket and `connect()`s again after a backoff that doubles from RECONNECT_MIN_S to
RECONNECT_MAX_S. A sink that restarted answers our heartbeat with "unknown-replica" and we say
hello again at once. Inference runs on its own thread, so heartbeats keep flowing while the
model works (inference.py): "silent" then really means dead, stopped or cut off.

Stopping (`serve`'s stop event, set by SIGTERM or SIGINT): say goodbye (the sink sends no more),
finish the frames in flight, close. `test_delay_ms` (testing only) holds each reply back that long
without blocking, like a replica behind a slow link; the benchmarks and the reorder tests use it.
Started from the command line by serve.py.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import socket
import threading
import time

import zmq

from shared import protocol
from shared.protocol import (ERR_BAD_REQUEST, ERR_BUSY, ERR_DRAINING, ERR_REFUSED, ERR_UNKNOWN_REPLICA,
                             MAX_TEXT, Error, Goodbye, Heartbeat, Hello, ProtocolError, SegmentRequest)
from shared.health import LivenessFile
from shared.heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS, peer_lifetime
from shared.keys import CurveKeys
from shared.ratelog import RateLimitedLog
from shared.transport import GOODBYE_LINGER_MS, ReplicaSocket, poll_timeout_ms

from .links import (DEFAULT_CAPACITY, RECONNECT_MAX_S, RECONNECT_MIN_S, Link, Sinks, check_capacity,
                    check_sinks)
from .inference import Inference, Job
from .model import SegmentationModel
from .model.base import InputSpec

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 5.0          # SIGTERM: longest wait for frames in flight
MAX_RECV_PER_TURN = 64


class Worker:
    """Serves one model to sinks: connect-mode links (we connect) and bind-mode links (sinks connect).

    Args:
        model: the segmentation model (its `input_spec` is announced in the hello).
        sinks: the sinks and their security, checked at start-up (`links.check_sinks`).
        connect / bind / curve / insecure / compose_network: instead of `sinks`, for embedded use
            and tests: the worker checks them itself (see `links.check_sinks`).
        capacity: frames in flight this replica accepts per sink.
        replica_id: the name the sink logs and counts us under.
        heartbeat_interval_s / heartbeat_liveness: our heartbeat period, and missed beats before
            the sink counts as gone.
        test_delay_ms: testing only: hold each reply back this long (without blocking).
        device: where the model computes, as the hello says it ("cpu", "cuda:0 fp16").
        batch: run frames that wait together in one pass (models with `segment_batch`, capacity > 1;
            the GPU path: there one pass of 4 costs little more than one of 1).
    """

    def __init__(self, model: SegmentationModel, *, sinks: Sinks | None = None, connect: list[str] = (),
                 bind: list[str] = (), capacity: int = DEFAULT_CAPACITY, curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False, replica_id: str | None = None,
                 heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S, heartbeat_liveness: int = HEARTBEAT_LIVENESS,
                 test_delay_ms: float = 0.0, health_file: str | None = None, device: str = "cpu",
                 batch: bool = False) -> None:
        check_capacity(capacity)
        if sinks is None:
            sinks = check_sinks(connect, bind, curve=curve, insecure=insecure, compose_network=compose_network)
        self.model = model
        self.spec: InputSpec = model.input_spec
        self.capacity = capacity
        self.device = device
        self.batch = batch and capacity > 1 and hasattr(model, "segment_batch")
        self.curve = sinks.curve
        self.insecure = sinks.insecure
        self.compose_network = sinks.compose_network
        self.replica_id = (replica_id or f"{socket.gethostname()}-{os.getpid()}")[:64]
        self._health = LivenessFile(health_file)   # container HEALTHCHECK: the loop is alive
        self.heartbeat_interval_s = heartbeat_interval_s
        self.heartbeat_liveness = heartbeat_liveness
        self.test_delay_s = max(0.0, test_delay_ms) / 1000.0
        self.links = [Link(e, "connect") for e in sinks.connect] + [Link(e, "bind") for e in sinks.bind]
        self.counts = dict.fromkeys(("requests", "masks", "bad_messages", "busy", "failed", "reconnects",
                                     "batched_frames"), 0)
        self._context = zmq.Context()
        self._delayed: list = []
        self._tiebreak = itertools.count()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._warn = RateLimitedLog(logger)
        self._inference = Inference(model, batch=self.batch, capacity=capacity, replica_id=self.replica_id,
                                    counts=self.counts, warn=self._warn, wake=self._wake_w)
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
    def mean_inference_ms(self) -> float:
        """Moving mean of the model pass, in ms."""
        return self._inference.mean_ms

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
        self._inference.start()
        drain_deadline = None
        try:
            now = time.monotonic()
            for link in self.links:
                self.connect(link, now)
            logger.info("I: serving %s %s on %s, capacity %d%s, as %s on %s (%s)", self.model_name,
                        self.spec.describe(), self.device, self.capacity,
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
            self._inference.stop(timeout_s=DRAIN_TIMEOUT_S)
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
        timeout_ms = poll_timeout_ms(min(deadlines, default=now + 0.1), now)
        events = dict(poller.poll(min(timeout_ms, 100)))
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
            self._warn.warning("size", "W: frame %d is %dx%d but this replica takes %s",
                               request.seq, w, h, spec.describe())
            self._reply_error(link, ERR_BAD_REQUEST, f"frame is {w}x{h}; this replica takes "
                              f"{spec.describe()}", request.seq)
            return
        link.in_flight.add(request.seq)
        self._outstanding += 1
        self._inference.jobs.put(Job(link, link.generation, request, now))

    def _collect_results(self, now: float) -> None:
        while True:
            try:
                job, payload, ok = self._inference.results.get_nowait()
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

    def _deliver(self, job: Job, payload: bytes) -> None:
        self._outstanding -= 1
        link = job.link
        if job.generation != link.generation or link.sock is None:
            return    # that session is gone; the sink has given the frame up already
        link.in_flight.discard(job.request.seq)
        link.sock.send(payload)
