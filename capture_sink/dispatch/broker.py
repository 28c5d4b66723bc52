"""The dispatcher's I/O thread: one ROUTER socket, the replica pool, heartbeats and credit.

ZeroMQ guide pattern: load-balancing broker (lbbroker) with Paranoid Pirate heartbeats
(ppqueue). Everything here runs on the one thread that owns the socket; what the capture loop
sees crosses through the `Mailbox`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable

import zmq

from shared import protocol
from shared.geometry import InputSpec
from shared.protocol import (ERR_BAD_REQUEST, ERR_BUSY, ERR_DRAINING, ERR_REFUSED, ERR_UNKNOWN_REPLICA,
                             MAX_TEXT, Error, Goodbye, Heartbeat, Hello, MaskReply, ProtocolError)
from shared.heartbeat import peer_lifetime
from shared.keys import CurveKeys
from shared.ratelog import RateLimitedLog
from shared.transport import PeerGone, SinkSocket, poll_timeout_ms

from .mailbox import Mailbox, MaskResult
from .replicas import InFlight, Replica, ReplicaPool

logger = logging.getLogger("capture_sink.dispatch")

MAX_RECV_PER_TURN = 256       # stay responsive to submit() and heartbeats under a flood
MAX_REPLICAS = 256            # more hellos than this are refused: state per peer stays bounded


class Broker:
    """Runs the socket loop (`run`, on its own thread) until `mailbox.closing`.

    Args:
        bind, connect, curve, insecure, compose_network: as for `Dispatcher`, already checked.
        heartbeat_interval_s, heartbeat_liveness, request_timeout_s: as for `Dispatcher`.
        mailbox: where frames come from and masks go.
        wake: the read end of a socket pair; a byte on it wakes the loop (a frame was offered).
        on_mask: called with each applied MaskResult, on this thread.
    """

    def __init__(self, *, bind: list[str], connect: list[str], curve: CurveKeys | None, insecure: bool,
                 compose_network: bool, heartbeat_interval_s: float, heartbeat_liveness: int,
                 request_timeout_s: float, mailbox: Mailbox, wake: socket.socket,
                 on_mask: Callable[[MaskResult], None] | None) -> None:
        self._bind, self._connect, self._curve = bind, connect, curve
        self._insecure, self._compose_network = insecure, compose_network
        self.heartbeat_interval_s, self.heartbeat_liveness = heartbeat_interval_s, heartbeat_liveness
        self.request_timeout_s = request_timeout_s
        self._mailbox, self._wake, self._on_mask = mailbox, wake, on_mask
        self.pool = ReplicaPool()
        self.spec: InputSpec | None = None       # from the first replica's hello
        self.model: str | None = None
        self.replica_count = 0
        self.ready = threading.Event()           # set once the socket is open (or failed to)
        self.start_error: BaseException | None = None
        self.bound: str | None = None
        self._warn = RateLimitedLog(logger)
        self._sink: SinkSocket | None = None

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            sink = SinkSocket(bind=self._bind, connect=self._connect, curve=self._curve,
                              insecure=self._insecure, compose_network=self._compose_network)
        except BaseException as exc:  # handed to Dispatcher.start(), which raises it in the caller's thread
            self.start_error = exc
            self.ready.set()
            return
        self.bound = sink.bound[-1] if sink.bound else None
        self.ready.set()
        logger.info("I: dispatcher on %s (%s)", ", ".join(self._bind + self._connect),
                    "CurveZMQ" if self._curve else "plain text")
        self._sink = sink
        poller = zmq.Poller()
        poller.register(sink.socket, zmq.POLLIN)
        poller.register(self._wake.fileno(), zmq.POLLIN)
        next_heartbeat = time.monotonic()
        try:
            while not self._mailbox.closing:
                now = time.monotonic()
                deadline = min(next_heartbeat, self.pool.next_expiry())
                events = dict(poller.poll(poll_timeout_ms(deadline, now)))
                if self._wake.fileno() in events:
                    self._drain_wake()
                if sink.socket in events:
                    self._receive(sink)
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
            with self._mailbox.lock:
                self.replica_count = 0
            sink.close()

    def _receive(self, sink: SinkSocket) -> None:
        for _ in range(MAX_RECV_PER_TURN):
            item = sink.recv()
            if item is None:
                return
            try:
                self._handle(item[0], item[1])
            except Exception as exc:  # a message we failed on must not stop the transport
                self._bad(item[0], f"internal error while handling it: {exc!r}")
                logger.debug("handling a message failed", exc_info=True)

    def _drain_wake(self) -> None:
        try:
            while self._wake.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _reply(self, identity: bytes, message: protocol.Message) -> None:
        try:
            self._sink.send(identity, protocol.encode(message))
        except PeerGone:
            pass

    def _bad(self, identity: bytes, why: str) -> None:
        self._mailbox.count("bad_messages")
        replica = self.pool.get(identity)
        who = replica.name if replica else f"peer {identity.hex()[-6:]}"
        self._warn.warning("bad", "W: dropped a bad message from %s: %s", who, why)

    # -- messages from replicas ---------------------------------------------------------------
    def _handle(self, identity: bytes, parts: list[bytes]) -> None:
        try:
            message = protocol.decode_parts(parts)
        except ProtocolError as exc:
            self._bad(identity, str(exc))
            return
        now = time.monotonic()
        replica = self.pool.get(identity)
        if isinstance(message, Hello):
            self._on_hello(identity, message, now)
            return
        if replica is None:
            if isinstance(message, MaskReply):
                self._mailbox.count("unexpected_replies")
            if isinstance(message, (MaskReply, Heartbeat)):
                # Paranoid Pirate: a replica the sink does not know (sink restarted, or it was
                # dropped as silent) re-introduces itself.
                self._reply(identity, Error(ERR_UNKNOWN_REPLICA, "say hello again", -1))
            elif not isinstance(message, (Goodbye, Error)):
                self._bad(identity, f"unexpected {type(message).__name__} from an unknown peer")
            return
        replica.heard(now)
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

    def _refuse(self, identity: bytes, text: str) -> None:
        self._mailbox.count("refused")
        self._reply(identity, Error(ERR_REFUSED, text, -1))

    def _on_hello(self, identity: bytes, hello: Hello, now: float) -> None:
        spec = InputSpec(hello.width, hello.height, hello.resize)
        existing = self.pool.get(identity)
        others = len(self.pool) - (1 if existing else 0)
        if existing is None and len(self.pool) >= MAX_REPLICAS:
            self._warn.warning("full", "W: refused replica %s: already %d replicas", hello.replica_id, MAX_REPLICAS)
            self._refuse(identity, f"this sink already has {MAX_REPLICAS} replicas")
            return
        if others and (spec != self.spec or hello.model != self.model):
            text = (f"this sink serves model {self.model} at {self.spec.describe()}; "
                    f"start this replica with --model {self.model}")[:MAX_TEXT]
            self._warn.warning(f"refuse:{hello.replica_id}"[:80], "W: refused replica %s: it runs %s at %s but %s",
                               hello.replica_id, hello.model, spec.describe(), text)
            self._refuse(identity, text)
            return
        if spec != self.spec or hello.model != self.model:
            if self.spec is not None:
                logger.info("I: replicas now run %s at %s", hello.model, spec.describe())
            self.spec, self.model = spec, hello.model
        lifetime = self._lifetime(hello.heartbeat_ms)
        if existing is not None:   # repeated hello: refresh, keep what is in flight
            existing.capacity, existing.replica_id, existing.device = hello.capacity, hello.replica_id, hello.device
            existing.lifetime_s = lifetime
            existing.heard(now)
            existing.leaving = False
        else:
            replica = Replica(identity, hello.replica_id, hello.model, spec, hello.capacity,
                              expiry=now + lifetime, lifetime_s=lifetime, device=hello.device)
            with self._mailbox.lock:
                self.pool.ready(replica)
                self.replica_count = len(self.pool)
            logger.info("I: replica %s joined: %s %s on %s, capacity %d; %d replica(s)", replica.name,
                        hello.model, spec.describe(), hello.device, hello.capacity, len(self.pool))
        self._reply(identity, Heartbeat(round(self.heartbeat_interval_s * 1000)))

    def _on_mask_reply(self, replica: Replica, reply: MaskReply, now: float) -> None:
        sent = replica.in_flight.pop(reply.seq, None)
        if sent is None:
            self._mailbox.count("unexpected_replies")
            self._warn.warning("unexpected", "W: replica %s answered frame %d, which it was not sent "
                               "(or which was given up)", replica.name, reply.seq)
            return
        replica.record_round_trip(now - sent.sent_time)
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
        result = MaskResult(reply.seq, sent.capture_time, mask, replica.replica_id, reply.inference_ms, now)
        if not self._mailbox.publish(result):
            return
        if self._on_mask is not None:
            try:
                self._on_mask(result)
            except Exception as exc:  # a broken callback must not stop the transport
                self._warn.error("callback", "E: on_mask callback failed: %r", exc)

    def _on_error(self, replica: Replica, error: Error) -> None:
        if error.seq >= 0 and replica.in_flight.pop(error.seq, None) is not None:
            self._mailbox.count("replica_errors")
        if error.code == ERR_DRAINING:
            replica.leaving = True
        if error.code in (ERR_BAD_REQUEST, ERR_BUSY):
            self._warn.warning(f"replica-error:{error.code}", "W: replica %s could not take frame %d: %s (%s)",
                               replica.name, error.seq, error.code, error.message)
        if replica.leaving and not replica.in_flight:
            self._drop(replica, "drained")

    # -- keeping the pool honest --------------------------------------------------------------
    def _drop(self, replica: Replica, why: str) -> None:
        with self._mailbox.lock:
            if self.pool.remove(replica.identity) is None:
                return
            self.replica_count = len(self.pool)
        lost = len(replica.in_flight)
        self._mailbox.count("lost_inflight", lost)
        replica.in_flight.clear()
        logger.info("I: replica %s dropped (%s)%s; %d replica(s) left", replica.name, why,
                    f", gave up {lost} frame(s) in flight" if lost else "", len(self.pool))

    def _purge(self, now: float) -> None:
        for replica in self.pool.expired(now):
            self._drop(replica, f"silent for {replica.lifetime_s:.2f} s")

    def _give_up_late(self, now: float) -> None:
        for replica in self.pool:
            late = [seq for seq, f in replica.in_flight.items() if now - f.sent_time > self.request_timeout_s]
            for seq in late:
                del replica.in_flight[seq]
            if late:
                self._mailbox.count("timed_out", len(late))
                self._warn.warning("late", "W: replica %s did not answer %d frame(s) within %.1f s; gave them up",
                                   replica.name, len(late), self.request_timeout_s)

    def _send_heartbeats(self) -> None:
        beat = protocol.encode(Heartbeat(round(self.heartbeat_interval_s * 1000)))
        for replica in self.pool:
            try:
                self._sink.send(replica.identity, beat)
            except PeerGone:
                self._drop(replica, "disconnected")

    def _dispatch(self, now: float) -> None:
        while self._mailbox.has_pending:
            replica = self.pool.next(now)
            if replica is None:
                return
            pending = self._mailbox.take()
            if pending is None:
                return
            try:
                queued = self._sink.send(replica.identity, pending.payload)
            except PeerGone:
                queued = False
                self._drop(replica, "disconnected")
            if not queued:
                self._mailbox.put_back(pending)
                if self.pool.get(replica.identity) is not None:
                    return    # its queue is full: it is stalled; expiry will drop it
                continue
            replica.in_flight[pending.seq] = InFlight(pending.seq, pending.capture_time, pending.width,
                                                      pending.height, now)
            replica.last_sent = now
            self._mailbox.count("sent")
