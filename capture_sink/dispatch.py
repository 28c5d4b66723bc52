"""The sink's load-balancing broker: frames out to segmenter replicas, masks back, newest first.

ZeroMQ guide pattern: load-balancing broker (lbbroker) with Paranoid Pirate heartbeats (ppqueue).
One ROUTER socket, owned by one I/O thread, talks to every replica: those that connect to the
sink's `bind` endpoints and those that bind and that the sink connects to. A replica says hello
(model, input size, capacity) and then gets frames only while it has free credit, so a slow or
dead replica is never sent more. Only the newest submitted frame waits for a free replica; a newer
one replaces it (counted as dropped). Masks can arrive out of order; one older than the newest
applied mask is dropped. Heartbeats go both ways; a replica silent for `liveness` intervals is
dropped and its in-flight frames given up. A replica that heartbeats to a sink that does not know
it (the sink restarted) is told to say hello again, so replicas rejoin by themselves.

    with Dispatcher(bind=["tcp://127.0.0.1:5555"]) as dispatcher:
        dispatcher.start()
        ...
        if dispatcher.input_spec:
            dispatcher.submit(prepare_input(frame, dispatcher.input_spec), seq, capture_time)
        result = dispatcher.wait_for(seq, timeout_s=0.033)
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import zmq

from shared.geometry import InputSpec
from shared import protocol
from shared.protocol import (ERR_BAD_REQUEST, ERR_BUSY, ERR_DRAINING, ERR_REFUSED, ERR_UNKNOWN_REPLICA,
                             MAX_TEXT, Error, Goodbye, Heartbeat, Hello, MaskReply, ProtocolError)
from shared.errors import TransportError
from shared.heartbeat import HEARTBEAT_INTERVAL_S, HEARTBEAT_LIVENESS, peer_lifetime
from shared.keys import CurveKeys
from shared.protocol import FRAME_ENCODINGS
from shared.ratelog import RateLimitedLog
from shared.security import check_links
from shared.transport import PeerGone, SinkSocket

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0       # an answer this late will not come: give the frame up, return the credit
MAX_RECV_PER_TURN = 256       # stay responsive to submit() and heartbeats under a flood
MAX_REPLICA_NAMES = 256       # per-replica counters kept (names come from peers: keep it bounded)
MAX_REPLICAS = 256            # more hellos than this are refused: state per peer stays bounded
ROUND_TRIP_TOLERANCE = 2.0    # replicas within 2x (+ slack) of the quickest round trip take turns
ROUND_TRIP_SLACK_S = 0.005
ROUND_TRIP_SMOOTHING = 0.2
ROUND_TRIP_HALF_LIFE_S = 1.0  # an idle replica's slow estimate halves its excess every second


@dataclass(frozen=True)
class MaskResult:
    """One applied mask. `mask` is uint8 (h, w) at the size that was sent, and read-only."""
    seq: int
    capture_time: float
    mask: np.ndarray
    replica_id: str
    inference_ms: float
    received_time: float


@dataclass
class InFlight:
    seq: int
    capture_time: float
    width: int
    height: int
    sent_time: float


@dataclass
class Replica:
    """A segmenter replica as the sink sees it: identity, credit and expiry."""
    identity: bytes
    replica_id: str
    model: str
    spec: InputSpec
    capacity: int
    expiry: float
    lifetime_s: float                # silence allowed before the replica counts as dead
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    masks: int = 0
    last_sent: float = 0.0
    round_trip_s: float = 0.0        # running average, frame sent -> mask back (0: untried, try it)
    leaving: bool = False            # said goodbye or draining: finish its work, send no more
    device: str = "cpu"              # where it computes, from its hello ("cuda:0 fp16", ...)

    @property
    def credit(self) -> int:
        return 0 if self.leaving else self.capacity - len(self.in_flight)

    @property
    def name(self) -> str:
        return f"{self.replica_id}[{self.identity.hex()[-6:]}]"


class ReplicaPool:
    """Live replicas: `ready` adds or refreshes one, `purge` drops the silent, `next` picks a free one."""

    def __init__(self) -> None:
        self._replicas: dict[bytes, Replica] = {}

    def __len__(self) -> int:
        return len(self._replicas)

    def __iter__(self) -> Iterator[Replica]:
        return iter(list(self._replicas.values()))

    def get(self, identity: bytes) -> Replica | None:
        return self._replicas.get(identity)

    def ready(self, replica: Replica) -> None:
        self._replicas[replica.identity] = replica

    def remove(self, identity: bytes) -> Replica | None:
        return self._replicas.pop(identity, None)

    def purge(self, now: float) -> list[Replica]:
        expired = [r for r in self._replicas.values() if r.expiry <= now]
        for replica in expired:
            del self._replicas[replica.identity]
        return expired

    def next(self, now: float) -> Replica | None:
        """A replica with free credit: among those about as quick as the quickest, the one idle longest.

        Equal replicas take turns (round robin); one that answers much slower than the others
        (a slow link, an overloaded box) only gets frames while the quick ones are all busy,
        because its masks would arrive late and older than theirs. A slow estimate fades while
        the replica sits idle, so a replica that had one hiccup is tried again soon.
        """
        free = [r for r in self._replicas.values() if r.credit > 0]
        if not free:
            return None
        quickest = min(r.round_trip_s for r in free)
        limit = quickest * ROUND_TRIP_TOLERANCE + ROUND_TRIP_SLACK_S

        def estimate(r: Replica) -> float:
            fade = 0.5 ** ((now - r.last_sent) / ROUND_TRIP_HALF_LIFE_S)
            return quickest + (r.round_trip_s - quickest) * fade

        return min((r for r in free if estimate(r) <= limit), key=lambda r: r.last_sent)

    def next_expiry(self) -> float:
        return min((r.expiry for r in self._replicas.values()), default=float("inf"))


@dataclass
class _Pending:
    seq: int
    capture_time: float
    width: int
    height: int
    payload: bytes


class Dispatcher:
    """Sends prepared frames to segmenter replicas and keeps the newest mask.

    Args:
        bind: endpoints where replicas connect (`python -m segmenter serve --connect ...`).
        connect: replicas that bind (`--bind tcp://*:5556` on gpu-box -> tcp://gpu-box:5556).
        curve: the sink's keys (`shared.keys.sink_keys(DIR)`) or None for plain text.
        insecure: allow plain text beyond loopback / the compose network (logs a warning).
        compose_network: the sink runs on the compose network (HOLOCAM_COMPOSE_NETWORK=1).
        heartbeat_interval_s: heartbeat period, both ways.
        heartbeat_liveness: intervals of silence before a replica is dropped (default 0.2 s x 4).
        request_timeout_s: an in-flight frame older than this is given up.
        encoding: "raw" (exact pixels) or "jpeg" (~10x fewer bytes, for slow links).
        jpeg_quality: 1..100 for "jpeg".
        on_mask: called with each applied MaskResult, on the dispatcher's thread; keep it short.
    """

    def __init__(self, *, bind: list[str] | tuple[str, ...] = ("tcp://127.0.0.1:5555",),
                 connect: list[str] | tuple[str, ...] = (), curve: CurveKeys | None = None,
                 insecure: bool = False, compose_network: bool = False,
                 heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S, heartbeat_liveness: int = HEARTBEAT_LIVENESS,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, encoding: str = "raw",
                 jpeg_quality: int = protocol.JPEG_QUALITY,
                 on_mask: Callable[[MaskResult], None] | None = None) -> None:
        if encoding not in FRAME_ENCODINGS:
            raise TransportError(f"frame encoding {encoding!r}: choose one of {', '.join(FRAME_ENCODINGS)}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise TransportError(f"JPEG quality {jpeg_quality} is out of range: use 1..100 "
                                 f"(default {protocol.JPEG_QUALITY})")
        if not 0.01 <= heartbeat_interval_s <= 60.0:
            raise TransportError(f"heartbeat interval {heartbeat_interval_s} s is out of range: use 0.01..60")
        if not 1 <= heartbeat_liveness <= 100:
            raise TransportError(f"heartbeat liveness {heartbeat_liveness} is out of range: use 1..100")
        self._bind = list(bind)
        self._connect = list(connect)
        # Endpoint syntax and the plain-text rule fail here, in the caller's thread, not later.
        if not self._bind and not self._connect:
            raise TransportError("the sink has no endpoint: give --bind or --segmenter tcp://HOST:PORT")
        check_links(bind=self._bind, connect=self._connect, curve=curve, insecure=insecure,
                    compose_network=compose_network)
        self._curve = curve
        self._insecure = insecure
        self._compose_network = compose_network
        self.heartbeat_interval_s = float(heartbeat_interval_s)
        self.heartbeat_liveness = int(heartbeat_liveness)
        self.request_timeout_s = float(request_timeout_s)
        self.encoding = encoding
        self.jpeg_quality = int(jpeg_quality)
        self._on_mask = on_mask

        self._lock = threading.Lock()            # pending frame, counters, pool structure
        self._cond = threading.Condition(self._lock)
        self._pending: _Pending | None = None
        self._latest: MaskResult | None = None
        self._spec: InputSpec | None = None
        self._model: str | None = None
        self._replica_count = 0
        self._counts = dict.fromkeys(
            ("sent", "dropped_busy", "masks_applied", "stale_dropped", "bad_messages", "lost_inflight",
             "timed_out", "unexpected_replies", "refused", "replica_errors", "send_failures",
             "wrong_size"), 0)
        self._masks_by_replica: dict[str, int] = {}
        self._pool = ReplicaPool()
        self._warn = RateLimitedLog(logger)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._bound: str | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- public API ---------------------------------------------------------------------------
    def start(self) -> None:
        """Open the socket on the dispatcher's own thread; raises TransportError if that fails."""
        if self._thread is not None:
            raise RuntimeError("Dispatcher.start() called twice")
        self._thread = threading.Thread(target=self._run, name="holocam-dispatch", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    @property
    def input_spec(self) -> InputSpec | None:
        """The input geometry replicas expect (from the first replica's hello), or None before one."""
        return self._spec

    @property
    def bound_endpoint(self) -> str | None:
        """The last bind endpoint as resolved once started (tcp://127.0.0.1:* shows its real port)."""
        return self._bound

    def submit(self, rgb: np.ndarray, seq: int, capture_time: float) -> bool:
        """Offer a prepared RGB frame; never blocks on the network.

        Args:
            rgb: uint8 (h, w, 3) RGB, prepared for `input_spec` (copied; the caller may reuse it).
            seq: increasing frame number.
            capture_time: time.monotonic() at capture.
        Returns:
            False if no replica is connected or the frame does not fit `input_spec`; True otherwise.
            The frame waits for a free replica; a newer submit replaces it (counted as dropped).
        """
        spec = self._spec
        if self._replica_count == 0 or spec is None:
            return False
        if not _fits(rgb, spec):
            with self._lock:
                self._counts["wrong_size"] += 1
            self._warn.warning("size", "W: frame %s does not fit the replicas' input %dx%d (%s): prepare it "
                               "with shared.resize.prepare_input(frame, dispatcher.input_spec)",
                               getattr(rgb, "shape", None), spec.width, spec.height, spec.resize)
            return False
        payload = protocol.encode_request(rgb, seq, capture_time, encoding=self.encoding,
                                          jpeg_quality=self.jpeg_quality)
        pending = _Pending(seq, float(capture_time), rgb.shape[1], rgb.shape[0], payload)
        with self._lock:
            if self._pending is not None:
                self._counts["dropped_busy"] += 1
            self._pending = pending
        self._wake()
        return True

    def latest(self) -> MaskResult | None:
        """The newest applied mask, or None before the first."""
        return self._latest

    def wait_for(self, seq: int, timeout_s: float) -> MaskResult | None:
        """Block until a mask with seq >= `seq` is applied, or `timeout_s` passes; returns latest()."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._closing and (self._latest is None or self._latest.seq < seq):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._latest

    def stats(self) -> dict:
        """Counters and the live replicas.

        `replicas` is their count and `per_replica` their details; `masks_by_replica` counts masks
        received per replica name (applied or stale); `sent`, `dropped_busy` (replaced before a
        replica was free), `masks_applied`, `stale_dropped`, `bad_messages`, `lost_inflight`
        (given up with a dropped replica), `timed_out`, `unexpected_replies`, `refused`, ...
        """
        now = time.monotonic()
        with self._lock:
            per_replica = [{"replica_id": r.replica_id, "model": r.model, "device": r.device,
                            "capacity": r.capacity,
                            "in_flight": len(r.in_flight), "credit": r.credit, "masks": r.masks,
                            "leaving": r.leaving, "round_trip_ms": round(r.round_trip_s * 1000, 2),
                            "expires_in_s": round(r.expiry - now, 3)}
                           for r in self._pool]
            out = dict(self._counts)
            out["masks_by_replica"] = dict(self._masks_by_replica)
        out["replicas"] = len(per_replica)
        out["per_replica"] = per_replica
        out["input_spec"] = self._spec
        return out

    def close(self) -> None:
        """Stop the I/O thread and close the socket (no goodbye: replicas notice by heartbeat)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake()
        if self._thread is not None:
            self._thread.join()
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> "Dispatcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the I/O thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass   # already awake (buffer full) or closing

    def _run(self) -> None:
        try:
            sink = SinkSocket(bind=self._bind, connect=self._connect, curve=self._curve,
                              insecure=self._insecure, compose_network=self._compose_network)
        except BaseException as exc:  # handed to start(), which raises it in the caller's thread
            self._start_error = exc
            self._ready.set()
            return
        self._bound = sink.bound[-1] if sink.bound else None
        self._ready.set()
        logger.info("I: dispatcher on %s (%s)", ", ".join(self._bind + self._connect),
                    "CurveZMQ" if self._curve else "plain text")
        self._sink = sink
        poller = zmq.Poller()
        poller.register(sink.socket, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        next_heartbeat = time.monotonic()
        try:
            while not self._closing:
                now = time.monotonic()
                deadline = min(next_heartbeat, self._pool.next_expiry())
                timeout_ms = max(0.0, (deadline - now) * 1000.0)
                events = dict(poller.poll(timeout_ms))
                if self._wake_r.fileno() in events:
                    self._drain_wake()
                if sink.socket in events:
                    for _ in range(MAX_RECV_PER_TURN):
                        item = sink.recv()
                        if item is None:
                            break
                        try:
                            self._handle(item[0], item[1])
                        except Exception as exc:  # a message we failed on must not stop the transport
                            self._bad(item[0], f"internal error while handling it: {exc!r}")
                            logger.debug("handling a message failed", exc_info=True)
                now = time.monotonic()
                self._purge(now)
                self._dispatch(now)
                if now >= next_heartbeat:
                    self._send_heartbeats()
                    self._give_up_late(now)
                    next_heartbeat = now + self.heartbeat_interval_s
        except Exception:
            logger.exception("E: dispatcher thread failed; masks stop until the sink restarts")
        finally:
            with self._lock:
                self._replica_count = 0
            sink.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _reply(self, identity: bytes, message: protocol.Message) -> None:
        try:
            self._sink.send(identity, protocol.encode(message))
        except PeerGone:
            pass

    def _bad(self, identity: bytes, why: str) -> None:
        with self._lock:
            self._counts["bad_messages"] += 1
        replica = self._pool.get(identity)
        who = replica.name if replica else f"peer {identity.hex()[-6:]}"
        self._warn.warning("bad", "W: dropped a bad message from %s: %s", who, why)

    def _handle(self, identity: bytes, parts: list[bytes]) -> None:
        try:
            message = protocol.decode_parts(parts)
        except ProtocolError as exc:
            self._bad(identity, str(exc))
            return
        now = time.monotonic()
        replica = self._pool.get(identity)
        if isinstance(message, Hello):
            self._on_hello(identity, message, now)
            return
        if replica is None:
            if isinstance(message, MaskReply):
                with self._lock:
                    self._counts["unexpected_replies"] += 1
            if isinstance(message, (MaskReply, Heartbeat)):
                # Paranoid Pirate: a replica the sink does not know (sink restarted, or it was
                # dropped as silent) re-introduces itself.
                self._reply(identity, Error(ERR_UNKNOWN_REPLICA, "say hello again", -1))
            elif not isinstance(message, (Goodbye, Error)):
                self._bad(identity, f"unexpected {type(message).__name__} from an unknown peer")
            return
        replica.expiry = now + replica.lifetime_s
        if isinstance(message, MaskReply):
            self._on_mask_reply(replica, message, now)
        elif isinstance(message, Heartbeat):
            replica.lifetime_s = self._lifetime(message.interval_ms)
        elif isinstance(message, Error):
            self._on_error(replica, message)
        elif isinstance(message, Goodbye):
            replica.leaving = True
            logger.info("I: replica %s is leaving (%s)", replica.name, message.reason or "no reason given")
            if not replica.in_flight:
                self._drop(replica, "said goodbye")
        else:
            self._bad(identity, f"a segmenter must not send {type(message).__name__}")

    def _lifetime(self, peer_interval_ms: int) -> float:
        return peer_lifetime(self.heartbeat_interval_s, self.heartbeat_liveness, peer_interval_ms)

    def _on_hello(self, identity: bytes, hello: Hello, now: float) -> None:
        spec = InputSpec(hello.width, hello.height, hello.resize)
        existing = self._pool.get(identity)
        others = len(self._pool) - (1 if existing else 0)
        if existing is None and len(self._pool) >= MAX_REPLICAS:
            with self._lock:
                self._counts["refused"] += 1
            self._warn.warning("full", "W: refused replica %s: already %d replicas", hello.replica_id, MAX_REPLICAS)
            self._reply(identity, Error(ERR_REFUSED, f"this sink already has {MAX_REPLICAS} replicas", -1))
            return
        if others and (spec != self._spec or hello.model != self._model):
            with self._lock:
                self._counts["refused"] += 1
            text = (f"this sink serves model {self._model} at {self._spec.width}x{self._spec.height} "
                    f"({self._spec.resize}); start this replica with --model {self._model}")[:MAX_TEXT]
            self._warn.warning(f"refuse:{hello.replica_id}"[:80],
                               "W: refused replica %s: it runs %s at %dx%d (%s) but %s",
                               hello.replica_id, hello.model, spec.width, spec.height, spec.resize, text)
            self._reply(identity, Error(ERR_REFUSED, text, -1))
            return
        if spec != self._spec or hello.model != self._model:
            if self._spec is not None:
                logger.info("I: replicas now run %s at %dx%d (%s)", hello.model, spec.width, spec.height, spec.resize)
            self._spec, self._model = spec, hello.model
        lifetime = self._lifetime(hello.heartbeat_ms)
        if existing is not None:   # repeated hello: refresh, keep what is in flight
            existing.capacity, existing.replica_id, existing.device = hello.capacity, hello.replica_id, hello.device
            existing.lifetime_s, existing.expiry = lifetime, now + lifetime
            existing.leaving = False
        else:
            replica = Replica(identity, hello.replica_id, hello.model, spec, hello.capacity,
                              expiry=now + lifetime, lifetime_s=lifetime, device=hello.device)
            with self._lock:
                self._pool.ready(replica)
                self._replica_count = len(self._pool)
            logger.info("I: replica %s joined: %s %dx%d (%s) on %s, capacity %d; %d replica(s)", replica.name,
                        hello.model, spec.width, spec.height, spec.resize, hello.device, hello.capacity,
                        len(self._pool))
        self._reply(identity, Heartbeat(round(self.heartbeat_interval_s * 1000)))

    def _on_mask_reply(self, replica: Replica, reply: MaskReply, now: float) -> None:
        sent = replica.in_flight.pop(reply.seq, None)
        if sent is None:
            with self._lock:
                self._counts["unexpected_replies"] += 1
            self._warn.warning("unexpected", "W: replica %s answered frame %d, which it was not sent "
                               "(or which was given up)", replica.name, reply.seq)
            return
        rtt = now - sent.sent_time
        replica.round_trip_s += (rtt - replica.round_trip_s) * (1.0 if replica.masks == 0 else ROUND_TRIP_SMOOTHING)
        if replica.leaving and not replica.in_flight:
            self._drop(replica, "finished its work after goodbye")
        if (reply.width, reply.height) != (sent.width, sent.height):
            self._bad(replica.identity, f"mask {reply.seq} is {reply.width}x{reply.height}, "
                                        f"but the frame was {sent.width}x{sent.height}")
            return
        try:
            mask = protocol.reply_mask(reply)
        except ProtocolError as exc:
            self._bad(replica.identity, str(exc))
            return
        replica.masks += 1
        with self._cond:
            names = self._masks_by_replica
            if replica.replica_id not in names and len(names) >= MAX_REPLICA_NAMES:
                names.pop(next(iter(names)))
            names[replica.replica_id] = names.get(replica.replica_id, 0) + 1
            if self._latest is not None and reply.seq <= self._latest.seq:
                self._counts["stale_dropped"] += 1
                return
            result = MaskResult(reply.seq, sent.capture_time, mask, replica.replica_id,
                                reply.inference_ms, now)
            self._latest = result
            self._counts["masks_applied"] += 1
            self._cond.notify_all()
        if self._on_mask is not None:
            try:
                self._on_mask(result)
            except Exception as exc:  # a broken callback must not stop the transport
                self._warn.error("callback", "E: on_mask callback failed: %r", exc)

    def _on_error(self, replica: Replica, error: Error) -> None:
        if error.seq >= 0 and replica.in_flight.pop(error.seq, None) is not None:
            with self._lock:
                self._counts["replica_errors"] += 1
        if error.code == ERR_DRAINING:
            replica.leaving = True
        if error.code in (ERR_BAD_REQUEST, ERR_BUSY):
            self._warn.warning(f"replica-error:{error.code}", "W: replica %s could not take frame %d: %s (%s)",
                               replica.name, error.seq, error.code, error.message)
        if replica.leaving and not replica.in_flight:
            self._drop(replica, "drained")

    def _drop(self, replica: Replica, why: str) -> None:
        with self._lock:
            if self._pool.remove(replica.identity) is None:
                return
            self._replica_count = len(self._pool)
            lost = len(replica.in_flight)
            self._counts["lost_inflight"] += lost
        replica.in_flight.clear()
        logger.info("I: replica %s dropped (%s)%s; %d replica(s) left", replica.name, why,
                    f", gave up {lost} frame(s) in flight" if lost else "", len(self._pool))

    def _purge(self, now: float) -> None:
        if self._pool.next_expiry() > now:
            return
        for replica in list(self._pool):
            if replica.expiry <= now:
                self._drop(replica, f"silent for {replica.lifetime_s:.2f} s")

    def _give_up_late(self, now: float) -> None:
        for replica in self._pool:
            late = [seq for seq, f in replica.in_flight.items() if now - f.sent_time > self.request_timeout_s]
            for seq in late:
                del replica.in_flight[seq]
            if late:
                with self._lock:
                    self._counts["timed_out"] += len(late)
                self._warn.warning("late", "W: replica %s did not answer %d frame(s) within %.1f s; gave them up",
                                   replica.name, len(late), self.request_timeout_s)

    def _send_heartbeats(self) -> None:
        beat = protocol.encode(Heartbeat(round(self.heartbeat_interval_s * 1000)))
        for replica in self._pool:
            try:
                self._sink.send(replica.identity, beat)
            except PeerGone:
                self._drop(replica, "disconnected")

    def _dispatch(self, now: float) -> None:
        while self._pending is not None:
            replica = self._pool.next(now)
            if replica is None:
                return
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is None:
                return
            try:
                queued = self._sink.send(replica.identity, pending.payload)
            except PeerGone:
                queued = False
                self._drop(replica, "disconnected")
            if not queued:
                with self._lock:
                    self._counts["send_failures"] += 1
                    if self._pending is None:    # keep it unless a newer frame arrived meanwhile
                        self._pending = pending
                if self._pool.get(replica.identity) is not None:
                    return    # its queue is full: it is stalled; expiry will drop it
                continue
            replica.in_flight[pending.seq] = InFlight(pending.seq, pending.capture_time, pending.width,
                                                      pending.height, now)
            replica.last_sent = now
            with self._lock:
                self._counts["sent"] += 1


def _fits(rgb: np.ndarray, spec: InputSpec) -> bool:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        return False
    h, w = rgb.shape[:2]
    return spec.accepts(w, h)
